package adstream.flink;

import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.HashSet;
import java.util.Map;
import java.util.Set;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.table.api.EnvironmentSettings;
import org.apache.flink.table.api.bridge.java.StreamTableEnvironment;
import org.apache.flink.table.catalog.GenericInMemoryCatalog;

/**
 * What {@link Runner} and {@link KafkaRunner} do alike with a job (the JSON of one run: `catalog`,
 * `database`, `baseConfig`, `tables`, `statements`): the answer channel, the table environment,
 * each statement's own options, and error messages.
 */
final class Jobs {
  private Jobs() {}

  /** The real stdout, for answers only; Flink and its dependencies may print, so System.out goes to stderr. */
  static PrintStream answers() {
    PrintStream out = new PrintStream(new FileOutputStream(FileDescriptor.out), true, StandardCharsets.UTF_8);
    System.setOut(System.err);
    return out;
  }

  /** The job's `baseConfig`, the options every statement starts from. */
  @SuppressWarnings("unchecked")
  static Map<String, String> baseConfig(Map<String, Object> job) {
    return (Map<String, String>) job.getOrDefault("baseConfig", Map.of());
  }

  /** A streaming table environment at parallelism 1 on `env`, using the job's catalog and database. */
  static StreamTableEnvironment tableEnvironment(StreamExecutionEnvironment env, Configuration base, Map<String, Object> job) {
    env.setParallelism(1);
    StreamTableEnvironment tEnv = StreamTableEnvironment.create(env, EnvironmentSettings.newInstance().inStreamingMode().withConfiguration(base).build());
    String catalog = (String) job.get("catalog");
    String database = (String) job.get("database");
    tEnv.registerCatalog(catalog, new GenericInMemoryCatalog(catalog, database));
    tEnv.useCatalog(catalog);
    tEnv.useDatabase(database);
    return tEnv;
  }

  /**
   * Gives each INSERT its own statement options (`config`), as Confluent runs each statement with
   * its own: the options of the previous statement are put back to the base ones first. Returns
   * the table configuration.
   */
  static final class StatementOptions {
    private final Map<String, String> baseConfig;
    private final Set<String> applied = new HashSet<>();

    StatementOptions(Map<String, String> baseConfig) {
      this.baseConfig = baseConfig;
    }

    @SuppressWarnings("unchecked")
    Configuration apply(StreamTableEnvironment tEnv, Map<String, Object> statement) {
      Configuration conf = (Configuration) tEnv.getConfig().getConfiguration();
      for (String key : applied) {
        if (baseConfig.containsKey(key)) conf.setString(key, baseConfig.get(key));
        else conf.removeKey(key);
      }
      applied.clear();
      for (Map.Entry<String, String> c : ((Map<String, String>) statement.getOrDefault("config", Map.of())).entrySet()) {
        conf.setString(c.getKey(), c.getValue());
        applied.add(c.getKey());
      }
      return conf;
    }
  }

  /** The messages of an exception and its causes, each once, each cut at `maxLength` characters. */
  static String messageOf(Throwable e, String separator, int maxLength) {
    StringBuilder b = new StringBuilder();
    Set<Throwable> seen = new HashSet<>();
    for (Throwable t = e; t != null && seen.add(t); t = t.getCause()) {
      String m = t.getMessage();
      if (m == null || b.indexOf(m) >= 0) continue;
      if (b.length() > 0) b.append(separator);
      b.append(t.getClass().getSimpleName()).append(": ").append(m.length() > maxLength ? m.substring(0, maxLength) : m);
    }
    return b.toString();
  }
}
