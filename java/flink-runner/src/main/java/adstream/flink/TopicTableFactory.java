package adstream.flink;

import java.io.IOException;
import java.util.ArrayList;
import java.util.EnumSet;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.apache.flink.api.connector.sink2.Sink;
import org.apache.flink.api.connector.sink2.SinkWriter;
import org.apache.flink.api.connector.sink2.WriterInitContext;
import org.apache.flink.configuration.ConfigOption;
import org.apache.flink.configuration.ConfigOptions;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.table.catalog.TableDistribution;
import org.apache.flink.table.connector.ChangelogMode;
import org.apache.flink.table.connector.ProviderContext;
import org.apache.flink.table.connector.sink.DynamicTableSink;
import org.apache.flink.table.connector.sink.SinkV2Provider;
import org.apache.flink.table.connector.sink.abilities.SupportsBucketing;
import org.apache.flink.table.connector.source.DataStreamScanProvider;
import org.apache.flink.table.connector.source.DynamicTableSource;
import org.apache.flink.table.connector.source.ScanTableSource;
import org.apache.flink.table.connector.source.abilities.SupportsReadingMetadata;
import org.apache.flink.table.data.GenericRowData;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.data.TimestampData;
import org.apache.flink.table.factories.DynamicTableSinkFactory;
import org.apache.flink.table.factories.DynamicTableSourceFactory;
import org.apache.flink.table.factories.FactoryUtil;
import org.apache.flink.table.runtime.typeutils.InternalTypeInfo;
import org.apache.flink.table.types.DataType;
import org.apache.flink.table.types.logical.LogicalType;
import org.apache.flink.table.types.logical.RowType;
import org.apache.flink.types.RowKind;

/**
 * Connector `adstream-topic`: a table backed by one in-JVM topic of the current run (see
 * {@link Topics}). It reads a topic the way Confluent's built-in connector does for the options
 * the translation passes: the record timestamp as metadata `timestamp` (the `$rowtime` column),
 * the raw key into `key.column`, the JSON value into the other physical columns, and the
 * changelog mode `append` (every record an insert) or `upsert` (a record replaces the row of its
 * key, a tombstone deletes it). As a sink it records every row with its change flag.
 */
public final class TopicTableFactory implements DynamicTableSourceFactory, DynamicTableSinkFactory {
  static final ConfigOption<String> TOPIC = ConfigOptions.key("topic").stringType().noDefaultValue();
  static final ConfigOption<String> CHANGELOG_MODE = ConfigOptions.key("changelog.mode").stringType().defaultValue("append");
  static final ConfigOption<String> KEY_COLUMN = ConfigOptions.key("key.column").stringType().noDefaultValue();

  /** Confluent table options that change nothing locally; accepted so the DDL stays as written. */
  static final List<String> CONFLUENT_PASS_THROUGH = List.of(
      "key.format", "value.format", "value.fields-include", "kafka.cleanup-policy", "kafka.retention.time",
      "kafka.retention.size", "kafka.max-message-size", "kafka.partitions");

  @Override
  public String factoryIdentifier() {
    return "adstream-topic";
  }

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

  private static ChangelogMode mode(String name, String table) {
    return mode(name, table, true);
  }

  /** The Kafka record metadata a topic table can read, as Confluent exposes it ($rowtime and the coordinates). */
  static Map<String, DataType> readableMetadata() {
    Map<String, DataType> m = new LinkedHashMap<>();
    m.put("timestamp", org.apache.flink.table.api.DataTypes.TIMESTAMP_LTZ(3).notNull());
    m.put("partition", org.apache.flink.table.api.DataTypes.INT().notNull());
    m.put("offset", org.apache.flink.table.api.DataTypes.BIGINT().notNull());
    return m;
  }

  /** The changelog a topic table declares for its `changelog.mode` (shared by the Kafka connector). */
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

  @Override
  public DynamicTableSource createDynamicTableSource(Context context) {
    FactoryUtil.TableFactoryHelper helper = FactoryUtil.createTableFactoryHelper(this, context);
    helper.validate();
    String table = context.getObjectIdentifier().getObjectName();
    String changelog = helper.getOptions().get(CHANGELOG_MODE);
    if (changelog.equals("upsert") && context.getPrimaryKeyIndexes().length == 0) {
      throw new IllegalArgumentException("table `" + table + "`: changelog.mode 'upsert' needs a PRIMARY KEY");
    }
    return new TopicSource(helper.getOptions().get(TOPIC), changelog, helper.getOptions().getOptional(KEY_COLUMN).orElse(null),
        (RowType) context.getPhysicalRowDataType().getLogicalType(), context.getPrimaryKeyIndexes(), List.of());
  }

  @Override
  public DynamicTableSink createDynamicTableSink(Context context) {
    FactoryUtil.TableFactoryHelper helper = FactoryUtil.createTableFactoryHelper(this, context);
    helper.validate();
    String table = context.getObjectIdentifier().getObjectName();
    String changelog = helper.getOptions().get(CHANGELOG_MODE);
    if (changelog.equals("upsert") && context.getPrimaryKeyIndexes().length == 0) {
      throw new IllegalArgumentException("table `" + table + "`: changelog.mode 'upsert' needs a PRIMARY KEY");
    }
    return new TopicSink(helper.getOptions().get(TOPIC), changelog, (RowType) context.getPhysicalRowDataType().getLogicalType());
  }

  /** Source of one topic; the metadata `timestamp`, `partition` and `offset` are readable. */
  static final class TopicSource implements ScanTableSource, SupportsReadingMetadata {
    private final String topic;
    private final String changelog;
    private final String keyColumn;
    private final RowType physical;
    private final int[] primaryKey;
    private List<String> metadata;
    private DataType produced;

    TopicSource(String topic, String changelog, String keyColumn, RowType physical, int[] primaryKey, List<String> metadata) {
      this.topic = topic;
      this.changelog = changelog;
      this.keyColumn = keyColumn;
      this.physical = physical;
      this.primaryKey = primaryKey;
      this.metadata = metadata;
    }

    @Override
    public ChangelogMode getChangelogMode() {
      // Deletes are declared full (not key-only): Flink 2.2.1's planner fails with an
      // IndexOutOfBoundsException (SatisfyDeleteKindTraitVisitor) on key-only-delete upsert
      // sources in the ranking's plan; ChangelogNormalize materializes every delete either way.
      return mode(changelog, topic, false);
    }

    @Override
    public Map<String, DataType> listReadableMetadata() {
      return readableMetadata();
    }

    @Override
    public void applyReadableMetadata(List<String> metadataKeys, DataType producedDataType) {
      this.metadata = new ArrayList<>(metadataKeys);
      this.produced = producedDataType;
    }

    private List<RowData> rows() {
      List<RowData> rows = new ArrayList<>();
      int keyIndex = keyColumn == null ? -1 : physical.getFieldNames().indexOf(keyColumn);
      if (keyColumn != null && keyIndex < 0) throw new IllegalArgumentException("table `" + topic + "`: key.column `" + keyColumn + "` is not a column");
      for (Topics.Input in : Topics.inputs(topic)) {
        GenericRowData row = new GenericRowData(physical.getFieldCount() + metadata.size());
        String where = "topic " + topic + " partition " + in.partition() + " offset " + in.offset() + ": ";
        try {
          if (in.value() == null) {
            if (!changelog.equals("upsert")) throw new IllegalArgumentException("a tombstone (null value) on an append table");
            row.setRowKind(RowKind.DELETE);
          } else {
            Map<String, Object> value = new LinkedHashMap<>(in.value());
            if (keyIndex >= 0 && value.containsKey(keyColumn)) throw new IllegalArgumentException("value has a field named like the key column `" + keyColumn + "`");
            List<String> names = physical.getFieldNames();
            for (int i = 0; i < names.size(); i++) {
              if (i == keyIndex) continue;
              String name = names.get(i);
              row.setField(i, Values.toInternal(value.remove(name), physical.getTypeAt(i), name));
            }
            if (!value.isEmpty()) throw new IllegalArgumentException("field(s) " + value.keySet() + " are not columns of the table (columns: " + names + ")");
          }
          if (keyIndex >= 0) row.setField(keyIndex, Values.toInternal(in.key(), physical.getTypeAt(keyIndex), keyColumn));
        } catch (RuntimeException e) {
          throw new IllegalArgumentException(where + e.getMessage(), e);
        }
        for (int m = 0; m < metadata.size(); m++) {
          Object v;
          switch (metadata.get(m)) {
            case "timestamp":
              v = TimestampData.fromEpochMillis(in.timestamp());
              break;
            case "partition":
              v = in.partition();
              break;
            default:
              v = in.offset();
          }
          row.setField(physical.getFieldCount() + m, v);
        }
        rows.add(row);
      }
      return rows;
    }

    @Override
    public ScanRuntimeProvider getScanRuntimeProvider(ScanContext context) {
      DataType producedType = produced;
      return new DataStreamScanProvider() {
        @Override
        public DataStream<RowData> produceDataStream(ProviderContext providerContext, StreamExecutionEnvironment env) {
          List<RowData> rows = rows();
          LogicalType type = producedType != null ? producedType.getLogicalType() : physical;
          InternalTypeInfo<RowData> info = InternalTypeInfo.of(type);
          if (rows.isEmpty()) {
            return env.fromData(List.of(new GenericRowData(((RowType) type).getFieldCount())), info).filter(r -> false).returns(info).name(topic);
          }
          return env.fromData(rows, info).name(topic).setParallelism(1);
        }

        // A topic is unbounded: the planner must plan a continuous query (as on Confluent),
        // even though a scenario's records end (the job then finishes with a final watermark).
        @Override
        public boolean isBounded() {
          return false;
        }
      };
    }

    @Override
    public DynamicTableSource copy() {
      TopicSource copy = new TopicSource(topic, changelog, keyColumn, physical, primaryKey, metadata);
      copy.produced = produced;
      return copy;
    }

    @Override
    public String asSummaryString() {
      return "adstream-topic(" + topic + ")";
    }
  }

  /** Sink of one topic: records every row and its change flag. */
  static final class TopicSink implements DynamicTableSink, SupportsBucketing {
    private final String topic;
    private final String changelog;
    private final RowType physical;

    TopicSink(String topic, String changelog, RowType physical) {
      this.topic = topic;
      this.changelog = changelog;
      this.physical = physical;
    }

    @Override
    public ChangelogMode getChangelogMode(ChangelogMode requestedMode) {
      return mode(changelog, topic, true);
    }

    @Override
    public SinkRuntimeProvider getSinkRuntimeProvider(Context context) {
      return SinkV2Provider.of(new Recorder(topic, physical));
    }

    @Override
    public DynamicTableSink copy() {
      return new TopicSink(topic, changelog, physical);
    }

    @Override
    public String asSummaryString() {
      return "adstream-topic(" + topic + ")";
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

  /** The sink function: appends each row to {@link Topics}. */
  static final class Recorder implements Sink<RowData> {
    private final String topic;
    private final RowType type;

    Recorder(String topic, RowType type) {
      this.topic = topic;
      this.type = type;
    }

    @Override
    public SinkWriter<RowData> createWriter(WriterInitContext context) throws IOException {
      Topics.touch(topic);
      return new SinkWriter<>() {
        @Override
        public void write(RowData row, Context ctx) {
          Topics.emit(topic, new Topics.Output(row.getRowKind().shortString(), Values.rowJson(row, type)));
        }

        @Override
        public void flush(boolean endOfInput) {}

        @Override
        public void close() {}
      };
    }
  }
}
