package adstream.flink;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.table.api.EnvironmentSettings;
import org.apache.flink.table.api.ExplainDetail;
import org.apache.flink.table.api.bridge.java.StreamTableEnvironment;
import org.apache.flink.table.catalog.GenericInMemoryCatalog;

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

  public static void main(String[] args) throws Exception {
    // Flink and its dependencies may print to stdout; answers go to the real stdout only.
    PrintStream out = new PrintStream(new java.io.FileOutputStream(java.io.FileDescriptor.out), true, StandardCharsets.UTF_8);
    System.setOut(System.err);
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

    Configuration base = new Configuration();
    Map<String, String> baseConfig = (Map<String, String>) job.getOrDefault("baseConfig", Map.of());
    baseConfig.forEach(base::setString);
    StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment(base);
    env.setParallelism(1);
    StreamTableEnvironment tEnv = StreamTableEnvironment.create(env, EnvironmentSettings.newInstance().inStreamingMode().withConfiguration(base).build());
    String catalog = (String) job.get("catalog");
    String database = (String) job.get("database");
    tEnv.registerCatalog(catalog, new GenericInMemoryCatalog(catalog, database));
    tEnv.useCatalog(catalog);
    tEnv.useDatabase(database);

    Map<String, Object> answer = new LinkedHashMap<>();
    List<Map<String, Object>> results = new ArrayList<>();
    answer.put("statements", results);
    String current = "(source tables)";
    try {
      for (Map<String, Object> t : (List<Map<String, Object>>) job.getOrDefault("tables", List.of())) {
        current = (String) t.get("name");
        tEnv.executeSql((String) t.get("sql"));
      }
      Set<String> applied = new HashSet<>();
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
        Configuration conf = (Configuration) tEnv.getConfig().getConfiguration();
        for (String key : applied) {
          if (baseConfig.containsKey(key)) conf.setString(key, baseConfig.get(key));
          else conf.removeKey(key);
        }
        applied.clear();
        for (Map.Entry<String, String> c : ((Map<String, String>) s.getOrDefault("config", Map.of())).entrySet()) {
          conf.setString(c.getKey(), c.getValue());
          applied.add(c.getKey());
        }
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
    StringBuilder b = new StringBuilder();
    Set<Throwable> seen = new HashSet<>();
    for (Throwable t = e; t != null && seen.add(t); t = t.getCause()) {
      String m = t.getMessage();
      if (m == null || b.indexOf(m) >= 0) continue;
      if (b.length() > 0) b.append("\nCaused by: ");
      b.append(t.getClass().getSimpleName()).append(": ").append(m);
    }
    return b.toString();
  }
}
