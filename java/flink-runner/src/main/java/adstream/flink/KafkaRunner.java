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
import org.apache.flink.configuration.Configuration;
import org.apache.flink.core.execution.JobClient;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.table.api.TableResult;
import org.apache.flink.table.api.bridge.java.StreamTableEnvironment;

/**
 * The continuous mode of the local Flink engine, for `npm run local`: reads one job (the same
 * translated statements as {@link Runner}, with every table on connector `adstream-kafka`, plus
 * the broker connection) as one JSON line on stdin, creates the tables, submits every INSERT as
 * its own streaming job (each with its own statement options, as Confluent runs one statement per
 * job), and then reports the state of every job as one JSON line on stdout every two seconds. It
 * stops every job and exits when stdin closes, so it never outlives the process that started it.
 */
public final class KafkaRunner {
  private static final ObjectMapper JSON = new ObjectMapper();

  private KafkaRunner() {}

  @SuppressWarnings("unchecked")
  public static void main(String[] args) throws Exception {
    PrintStream out = Jobs.answers();
    BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
    String line = in.readLine();
    if (line == null) return;
    Map<String, Object> job = JSON.readValue(line, Map.class);
    Map<String, Object> kafka = (Map<String, Object>) job.get("kafka");
    KafkaTableFactory.connection = new KafkaTableFactory.Connection((String) kafka.get("bootstrap"), (String) kafka.get("username"),
        (String) kafka.get("password"), (String) kafka.getOrDefault("groupPrefix", ""), ((Number) kafka.getOrDefault("keySchemaId", 100_001)).intValue(),
        ((Number) kafka.getOrDefault("valueSchemaId", 100_002)).intValue());

    Map<String, JobClient> jobs = new LinkedHashMap<>();
    Thread watcher = new Thread(() -> {
      try {
        while (in.readLine() != null) {
          // Nothing to read: stdin stays open while the launcher lives.
        }
      } catch (Exception ignored) {
        // Launcher gone.
      }
      stop(jobs);
      Runtime.getRuntime().halt(0);
    }, "stdin-watch");
    watcher.setDaemon(true);

    try {
      Map<String, String> baseConfig = Jobs.baseConfig(job);
      Configuration base = new Configuration();
      baseConfig.forEach(base::setString);
      StreamTableEnvironment tEnv = Jobs.tableEnvironment(StreamExecutionEnvironment.getExecutionEnvironment(base), base, job);
      for (Map<String, Object> t : (List<Map<String, Object>>) job.getOrDefault("tables", List.of())) {
        tEnv.executeSql((String) t.get("sql"));
      }
      Jobs.StatementOptions options = new Jobs.StatementOptions(baseConfig);
      for (Map<String, Object> s : (List<Map<String, Object>>) job.get("statements")) {
        String name = (String) s.get("name");
        String sql = (String) s.get("sql");
        if (!"dml".equals(s.get("kind"))) {
          tEnv.executeSql(sql);
          continue;
        }
        options.apply(tEnv, s).setString("pipeline.name", name);
        KafkaTableFactory.currentStatement = name;
        try {
          TableResult result = tEnv.executeSql(sql);
          jobs.put(name, result.getJobClient().orElseThrow());
        } catch (Throwable e) {
          throw new IllegalStateException("statement " + name + ": " + messageOf(e), e);
        }
      }
    } catch (Throwable e) {
      e.printStackTrace();
      out.println(JSON.writeValueAsString(Map.of("ok", false, "error", messageOf(e))));
      stop(jobs);
      Runtime.getRuntime().halt(1);
    }
    watcher.start();
    out.println(JSON.writeValueAsString(Map.of("ok", true, "jobs", new ArrayList<>(jobs.keySet()))));
    while (true) {
      Map<String, Object> status = new LinkedHashMap<>();
      Map<String, String> states = new LinkedHashMap<>();
      for (Map.Entry<String, JobClient> e : jobs.entrySet()) {
        String state;
        try {
          state = e.getValue().getJobStatus().get(5, java.util.concurrent.TimeUnit.SECONDS).toString();
        } catch (Exception ex) {
          state = "UNKNOWN";
        }
        if (state.equals("FAILED") || state.equals("FINISHED") || state.equals("CANCELED")) {
          String message = "";
          try {
            e.getValue().getJobExecutionResult().get(5, java.util.concurrent.TimeUnit.SECONDS);
          } catch (Exception ex) {
            message = messageOf(ex);
          }
          states.put(e.getKey(), state + (message.isEmpty() ? "" : ": " + message));
        } else {
          states.put(e.getKey(), state);
        }
      }
      status.put("jobs", states);
      Map<String, Long> skipped = new LinkedHashMap<>();
      KafkaTableFactory.SKIPPED.forEach((k, v) -> skipped.put(k, v.get()));
      status.put("skipped", skipped);
      out.println(JSON.writeValueAsString(status));
      Thread.sleep(2000);
    }
  }

  private static void stop(Map<String, JobClient> jobs) {
    for (JobClient client : jobs.values()) {
      try {
        client.cancel().get(10, java.util.concurrent.TimeUnit.SECONDS);
      } catch (Exception ignored) {
        // Exiting anyway.
      }
    }
  }

  private static String messageOf(Throwable e) {
    return Jobs.messageOf(e, " / ", 600);
  }
}
