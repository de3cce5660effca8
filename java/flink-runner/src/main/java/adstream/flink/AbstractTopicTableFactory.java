package adstream.flink;

import java.util.ArrayList;
import java.util.EnumSet;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.apache.flink.configuration.ConfigOption;
import org.apache.flink.configuration.ConfigOptions;
import org.apache.flink.table.api.DataTypes;
import org.apache.flink.table.catalog.TableDistribution;
import org.apache.flink.table.connector.ChangelogMode;
import org.apache.flink.table.connector.sink.DynamicTableSink;
import org.apache.flink.table.connector.sink.abilities.SupportsBucketing;
import org.apache.flink.table.connector.source.ScanTableSource;
import org.apache.flink.table.connector.source.abilities.SupportsReadingMetadata;
import org.apache.flink.table.data.GenericRowData;
import org.apache.flink.table.data.TimestampData;
import org.apache.flink.table.factories.DynamicTableSinkFactory;
import org.apache.flink.table.factories.DynamicTableSourceFactory;
import org.apache.flink.table.factories.FactoryUtil;
import org.apache.flink.table.types.DataType;
import org.apache.flink.table.types.logical.LogicalType;
import org.apache.flink.table.types.logical.RowType;

/**
 * What the two topic connectors (`adstream-topic` in the JVM, `adstream-kafka` on a broker)
 * share: the table options of Confluent's built-in connector, their validation, the changelog a
 * `changelog.mode` declares, and the record metadata a table can read.
 */
abstract class AbstractTopicTableFactory implements DynamicTableSourceFactory, DynamicTableSinkFactory {
  static final ConfigOption<String> TOPIC = ConfigOptions.key("topic").stringType().noDefaultValue();
  static final ConfigOption<String> CHANGELOG_MODE = ConfigOptions.key("changelog.mode").stringType().defaultValue("append");
  static final ConfigOption<String> KEY_COLUMN = ConfigOptions.key("key.column").stringType().noDefaultValue();

  /** Confluent table options that change nothing locally; accepted so the DDL stays as written. */
  static final List<String> CONFLUENT_PASS_THROUGH = List.of(
      "key.format", "value.format", "value.fields-include", "kafka.cleanup-policy", "kafka.retention.time",
      "kafka.retention.size", "kafka.max-message-size", "kafka.partitions");

  /** The validated options and schema of one topic table. */
  record TopicTable(String topic, String changelog, String keyColumn, RowType physical, int[] primaryKey) implements java.io.Serializable {}

  @Override
  public Set<ConfigOption<?>> requiredOptions() {
    return Set.of(TOPIC);
  }

  @Override
  public Set<ConfigOption<?>> optionalOptions() {
    Set<ConfigOption<?>> options = new HashSet<>();
    options.add(CHANGELOG_MODE);
    options.add(KEY_COLUMN);
    for (String key : CONFLUENT_PASS_THROUGH) options.add(ConfigOptions.key(key).stringType().noDefaultValue());
    return options;
  }

  /** Validates a table's options (an upsert table needs a primary key) and returns them. */
  TopicTable topicTable(Context context) {
    FactoryUtil.TableFactoryHelper helper = FactoryUtil.createTableFactoryHelper(this, context);
    helper.validate();
    String changelog = helper.getOptions().get(CHANGELOG_MODE);
    if (changelog.equals("upsert") && context.getPrimaryKeyIndexes().length == 0) {
      throw new IllegalArgumentException("table `" + context.getObjectIdentifier().getObjectName() + "`: changelog.mode 'upsert' needs a PRIMARY KEY");
    }
    return new TopicTable(helper.getOptions().get(TOPIC), changelog, helper.getOptions().getOptional(KEY_COLUMN).orElse(null),
        (RowType) context.getPhysicalRowDataType().getLogicalType(), context.getPrimaryKeyIndexes());
  }

  /** The changelog a topic table declares for its `changelog.mode`. */
  static ChangelogMode mode(String name, String table, boolean keyOnlyDeletes) {
    switch (name) {
      case "append":
        return ChangelogMode.insertOnly();
      case "upsert":
        return ChangelogMode.upsert(keyOnlyDeletes);
      case "retract":
        return ChangelogMode.all();
      default:
        throw new IllegalArgumentException("table `" + table + "`: unknown changelog.mode '" + name + "'");
    }
  }

  /** Sets the metadata columns (after the physical ones) of a row read from a record. */
  static void setMetadata(GenericRowData row, RowType physical, List<String> metadata, long timestamp, int partition, long offset) {
    for (int m = 0; m < metadata.size(); m++) {
      Object v;
      switch (metadata.get(m)) {
        case "timestamp":
          v = TimestampData.fromEpochMillis(timestamp);
          break;
        case "partition":
          v = partition;
          break;
        default:
          v = offset;
      }
      row.setField(physical.getFieldCount() + m, v);
    }
  }

  /** Source of one topic; the metadata `timestamp` ($rowtime), `partition` and `offset` are readable. */
  abstract static class TopicScan implements ScanTableSource, SupportsReadingMetadata {
    final TopicTable table;
    List<String> metadata = List.of();
    DataType produced;

    TopicScan(TopicTable table) {
      this.table = table;
    }

    @Override
    public ChangelogMode getChangelogMode() {
      // Deletes are declared full (not key-only): Flink 2.2.1's planner fails with an
      // IndexOutOfBoundsException (SatisfyDeleteKindTraitVisitor) on key-only-delete upsert
      // sources in the ranking's plan; ChangelogNormalize materializes every delete either way.
      return mode(table.changelog(), table.topic(), false);
    }

    @Override
    public Map<String, DataType> listReadableMetadata() {
      Map<String, DataType> m = new LinkedHashMap<>();
      m.put("timestamp", DataTypes.TIMESTAMP_LTZ(3).notNull());
      m.put("partition", DataTypes.INT().notNull());
      m.put("offset", DataTypes.BIGINT().notNull());
      return m;
    }

    @Override
    public void applyReadableMetadata(List<String> metadataKeys, DataType producedDataType) {
      this.metadata = new ArrayList<>(metadataKeys);
      this.produced = producedDataType;
    }

    /** The type of the rows the source produces: the physical columns, then the metadata read. */
    LogicalType producedType() {
      return produced != null ? produced.getLogicalType() : table.physical();
    }

    /** Gives a copy this source's metadata, for {@link #copy()}. */
    <T extends TopicScan> T withStateOf(T copy) {
      copy.metadata = metadata;
      copy.produced = produced;
      return copy;
    }
  }

  /** Sink of one topic: upserts and deletes when the table is an upsert table; any distribution. */
  abstract static class TopicWrite implements DynamicTableSink, SupportsBucketing {
    final TopicTable table;

    TopicWrite(TopicTable table) {
      this.table = table;
    }

    @Override
    public ChangelogMode getChangelogMode(ChangelogMode requestedMode) {
      return mode(table.changelog(), table.topic(), true);
    }

    @Override
    public Set<TableDistribution.Kind> listAlgorithms() {
      return EnumSet.of(TableDistribution.Kind.HASH, TableDistribution.Kind.UNKNOWN);
    }

    @Override
    public boolean requiresBucketCount() {
      return false;
    }
  }
}
