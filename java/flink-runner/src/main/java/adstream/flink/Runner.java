package adstream.flink;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.table.api.ExplainDetail;
import org.apache.flink.table.api.bridge.java.StreamTableEnvironment;

/**
 * The local Flink engine of adstream's tests: one long-lived JVM that reads jobs as JSON lines
 * on stdin and answers each with one JSON line on stdout. A job carries the statements exactly
 * as synthesized (after the documented translation, done in TypeScript), the inferred source
 * tables, and, for a scenario, the records of each input topic. For every statement it returns
 * Flink's plan with changelog modes; with `execute` it also runs each INSERT to completion on a
 * local MiniCluster (parallelism 1) and returns every sink's changelog.
 */
public final class Runner {
  private static final ObjectMapper JSON = new ObjectMapper();
  private static final Pattern NODE = Pattern.compile("^[\\s|:+-]*([A-Za-z]+)\\(");
  private static final Pattern CHANGELOG = Pattern.compile("changelogMode=\\[([A-Z,]+)\\]");

  private Runner() {}

  /** The one MiniCluster of this JVM; every job is submitted to it (no cluster start per job). */
  private static java.net.URI cluster;
  private static org.apache.flink.runtime.minicluster.MiniCluster miniClusterInstance;

  private static void startCluster() throws Exception {
    Configuration conf = new Configuration();
    conf.set(org.apache.flink.configuration.RestOptions.BIND_ADDRESS, "127.0.0.1");
    conf.set(org.apache.flink.configuration.RestOptions.ADDRESS, "127.0.0.1");
    conf.set(org.apache.flink.configuration.RestOptions.BIND_PORT, "0");
    org.apache.flink.runtime.minicluster.MiniCluster miniCluster = new org.apache.flink.runtime.minicluster.MiniCluster(
        new org.apache.flink.runtime.minicluster.MiniClusterConfiguration.Builder()
            .setConfiguration(conf)
            .setNumTaskManagers(1)
            .setNumSlotsPerTaskManager(8)
            .build());
    miniCluster.start();
    miniClusterInstance = miniCluster;
    cluster = miniCluster.getRestAddress().get();
  }

  public static void main(String[] args) throws Exception {
    PrintStream out = Jobs.answers();
    startCluster();
    BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
    out.println(JSON.writeValueAsString(Map.of("ready", true)));
    String line;
    while ((line = in.readLine()) != null) {
      if (line.isBlank()) continue;
      Map<String, Object> answer;
      Object id = null;
      try {
        @SuppressWarnings("unchecked")
        Map<String, Object> job = JSON.readValue(line, Map.class);
        id = job.get("id");
        answer = run(job);
      } catch (Throwable e) {
        answer = new LinkedHashMap<>();
        answer.put("ok", false);
        answer.put("error", Map.of("statement", "(job)", "message", messageOf(e)));
      }
      answer.put("id", id);
      out.println(JSON.writeValueAsString(answer));
    }
    // stdin closed: the caller is done. Stop the cluster and leave (its threads are not daemons).
    try {
      miniClusterInstance.closeAsync().get(10, java.util.concurrent.TimeUnit.SECONDS);
    } finally {
      System.exit(0);
    }
  }

  @SuppressWarnings("unchecked")
  private static Map<String, Object> run(Map<String, Object> job) throws Exception {
    boolean execute = Boolean.TRUE.equals(job.get("execute"));
    boolean continueOnError = Boolean.TRUE.equals(job.get("continueOnError"));
    Map<String, List<Topics.Input>> inputs = new LinkedHashMap<>();
    Map<String, Object> rawInputs = (Map<String, Object>) job.getOrDefault("inputs", Map.of());
    for (Map.Entry<String, Object> e : rawInputs.entrySet()) {
      List<Topics.Input> records = new ArrayList<>();
      Map<Integer, Long> offsets = new LinkedHashMap<>();
      for (Map<String, Object> r : (List<Map<String, Object>>) e.getValue()) {
        int partition = ((Number) r.getOrDefault("partition", 0)).intValue();
        long offset = offsets.merge(partition, 1L, Long::sum) - 1;
        records.add(new Topics.Input(partition, (String) r.get("key"), (Map<String, Object>) r.get("value"),
            ((Number) r.get("timestamp")).longValue(), offset));
      }
      inputs.put(e.getKey(), records);
    }
    Topics.reset(inputs);

    Map<String, String> baseConfig = Jobs.baseConfig(job);
    Configuration base = new Configuration();
    baseConfig.forEach(base::setString);
    Configuration submit = new Configuration(base);
    submit.set(org.apache.flink.configuration.DeploymentOptions.TARGET, "remote");
    submit.set(org.apache.flink.configuration.RestOptions.ADDRESS, cluster.getHost());
    submit.set(org.apache.flink.configuration.RestOptions.PORT, cluster.getPort());
    StreamTableEnvironment tEnv = Jobs.tableEnvironment(new StreamExecutionEnvironment(submit), base, job);

    Map<String, Object> answer = new LinkedHashMap<>();
    List<Map<String, Object>> results = new ArrayList<>();
    answer.put("statements", results);
    String current = "(source tables)";
    try {
      for (Map<String, Object> t : (List<Map<String, Object>>) job.getOrDefault("tables", List.of())) {
        current = (String) t.get("name");
        tEnv.executeSql((String) t.get("sql"));
      }
      Jobs.StatementOptions options = new Jobs.StatementOptions(baseConfig);
      for (Map<String, Object> s : (List<Map<String, Object>>) job.get("statements")) {
        current = (String) s.get("name");
        String sql = (String) s.get("sql");
        Map<String, Object> result = new LinkedHashMap<>();
        result.put("name", current);
        if (!"dml".equals(s.get("kind"))) {
          tEnv.executeSql(sql);
          results.add(result);
          continue;
        }
        options.apply(tEnv, s);
        try {
          String plan = tEnv.explainSql(sql, ExplainDetail.CHANGELOG_MODE);
          describePlan(plan, result);
          if (execute) tEnv.executeSql(sql).await();
        } catch (Throwable e) {
          if (!continueOnError) throw e;
          e.printStackTrace();
          result.put("error", messageOf(e));
          answer.putIfAbsent("error", Map.of("statement", current, "message", messageOf(e)));
        }
        results.add(result);
      }
    } catch (Throwable e) {
      e.printStackTrace();
      answer.put("ok", false);
      answer.put("error", Map.of("statement", current, "message", messageOf(e)));
      return answer;
    }
    answer.put("ok", !answer.containsKey("error"));
    if (execute) {
      Map<String, Object> sinks = new LinkedHashMap<>();
      Topics.outputs().forEach((topic, rows) -> {
        List<Map<String, Object>> changelog = new ArrayList<>();
        for (Topics.Output o : rows) {
          Map<String, Object> entry = new LinkedHashMap<>();
          entry.put("op", o.op());
          entry.put("row", o.row());
          changelog.add(entry);
        }
        sinks.put(topic, changelog);
      });
      answer.put("sinks", sinks);
    }
    return answer;
  }

  /** The physical plan, the changelog mode the sink receives, and the operators it uses. */
  private static void describePlan(String explain, Map<String, Object> result) {
    int start = explain.indexOf("== Optimized Physical Plan ==");
    int end = explain.indexOf("== Optimized Execution Plan ==");
    String physical = start < 0 ? explain : explain.substring(start, end < 0 ? explain.length() : end).trim();
    result.put("plan", physical);
    String[] lines = physical.split("\n");
    List<String> operators = new ArrayList<>();
    String sinkInput = null;
    boolean sinkSeen = false;
    for (String line : lines) {
      Matcher node = NODE.matcher(line);
      if (!node.find()) continue;
      operators.add(node.group(1));
      if (node.group(1).equals("Sink")) {
        sinkSeen = true;
        result.put("upsertMaterialize", line.contains("upsertMaterialize=[true]"));
        continue;
      }
      if (sinkSeen && sinkInput == null) {
        Matcher c = CHANGELOG.matcher(line);
        if (c.find()) sinkInput = c.group(1);
      }
    }
    result.put("sinkInputChangelogMode", sinkInput);
    result.put("operators", operators);
  }

  private static String messageOf(Throwable e) {
    return Jobs.messageOf(e, "\nCaused by: ", Integer.MAX_VALUE);
  }
}
