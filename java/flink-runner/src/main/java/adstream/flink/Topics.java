package adstream.flink;

import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The in-JVM stand-in for the Kafka topics of one run: the scenario's records per input topic
 * (in arrival order) and the changelog each sink topic receives. The MiniCluster runs in this
 * JVM, so sources and sinks reach it directly. One run at a time (the runner is sequential).
 */
final class Topics {
  /** One Kafka record of a scenario: partition, raw key, JSON value (null = tombstone), timestamp. */
  record Input(int partition, String key, Map<String, Object> value, long timestamp, long offset) implements java.io.Serializable {}

  /** One row a sink received: its change flag (+I, -U, +U, -D) and the row as JSON-ready values. */
  record Output(String op, Map<String, Object> row) {}

  private static final Map<String, List<Input>> INPUTS = new LinkedHashMap<>();
  private static final Map<String, List<Output>> OUTPUTS = new LinkedHashMap<>();

  private Topics() {}

  static synchronized void reset(Map<String, List<Input>> inputs) {
    INPUTS.clear();
    INPUTS.putAll(inputs);
    OUTPUTS.clear();
  }

  static synchronized List<Input> inputs(String topic) {
    return new ArrayList<>(INPUTS.getOrDefault(topic, Collections.emptyList()));
  }

  static synchronized void emit(String topic, Output output) {
    OUTPUTS.computeIfAbsent(topic, t -> new ArrayList<>()).add(output);
  }

  static synchronized void touch(String topic) {
    OUTPUTS.computeIfAbsent(topic, t -> new ArrayList<>());
  }

  static synchronized Map<String, List<Output>> outputs() {
    Map<String, List<Output>> copy = new LinkedHashMap<>();
    OUTPUTS.forEach((k, v) -> copy.put(k, new ArrayList<>(v)));
    return copy;
  }
}
