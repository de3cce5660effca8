package adstream.flink;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.math.BigDecimal;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.configuration.ConfigOption;
import org.apache.flink.configuration.ConfigOptions;
import org.apache.flink.connector.base.DeliveryGuarantee;
import org.apache.flink.connector.kafka.sink.KafkaRecordSerializationSchema;
import org.apache.flink.connector.kafka.sink.KafkaSink;
import org.apache.flink.connector.kafka.source.KafkaSource;
import org.apache.flink.connector.kafka.source.enumerator.initializer.OffsetsInitializer;
import org.apache.flink.connector.kafka.source.reader.deserializer.KafkaRecordDeserializationSchema;
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
import org.apache.flink.table.connector.source.abilities.SupportsWatermarkPushDown;
import org.apache.flink.table.data.ArrayData;
import org.apache.flink.table.data.DecimalData;
import org.apache.flink.table.data.GenericRowData;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.data.TimestampData;
import org.apache.flink.table.factories.DynamicTableSinkFactory;
import org.apache.flink.table.factories.DynamicTableSourceFactory;
import org.apache.flink.table.factories.FactoryUtil;
import org.apache.flink.table.runtime.typeutils.InternalTypeInfo;
import org.apache.flink.table.types.DataType;
import org.apache.flink.table.types.logical.ArrayType;
import org.apache.flink.table.types.logical.LogicalType;
import org.apache.flink.table.types.logical.RowType;
import org.apache.flink.types.RowKind;
import org.apache.flink.util.Collector;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.producer.ProducerRecord;

/**
 * Connector `adstream-kafka`: a table backed by a real Kafka topic on the broker of the current
 * {@link KafkaRunner} run, read and written the way Confluent Cloud's built-in connector does it
 * for our tables: values in the JSON Schema Registry wire format (magic byte 0, 4-byte schema
 * id, JSON text; decimals as strings, TIMESTAMP_LTZ as epoch milliseconds), the raw record key
 * into `key.column` (inferred tables), an upsert table's key as the JSON of its primary key
 * columns (wire format too), tombstones as deletes, and the record timestamp as metadata
 * `timestamp` (`$rowtime`). A record that cannot be read is skipped and logged, as Confluent's
 * `error-handling.mode = 'log'` does; the default there fails the statement instead.
 */
public final class KafkaTableFactory implements DynamicTableSourceFactory, DynamicTableSinkFactory {
  /** Identifier used in the translated DDL. */
  public static final String IDENTIFIER = "adstream-kafka";

  /** Where the run's broker is and how each source names its consumer group; set once by {@link KafkaRunner}. */
  static final class Connection implements java.io.Serializable {
    final String bootstrap;
    final String username;
    final String password;
    final String groupPrefix;
    final int keySchemaId;
    final int valueSchemaId;

    Connection(String bootstrap, String username, String password, String groupPrefix, int keySchemaId, int valueSchemaId) {
      this.bootstrap = bootstrap;
      this.username = username;
      this.password = password;
      this.groupPrefix = groupPrefix;
      this.keySchemaId = keySchemaId;
      this.valueSchemaId = valueSchemaId;
    }

    Properties clientProperties() {
      Properties p = new Properties();
      p.setProperty("bootstrap.servers", bootstrap);
      p.setProperty("security.protocol", "SASL_PLAINTEXT");
      p.setProperty("sasl.mechanism", "PLAIN");
      p.setProperty("sasl.jaas.config", "org.apache.kafka.common.security.plain.PlainLoginModule required username=\""
          + username.replace("\"", "\\\"") + "\" password=\"" + password.replace("\"", "\\\"") + "\";");
      return p;
    }
  }

  static volatile Connection connection;
  /** Name of the statement being planned (its sources' consumer group names it). */
  static volatile String currentStatement = "statement";
  /** Records skipped because they could not be read, per topic. */
  static final Map<String, AtomicLong> SKIPPED = new java.util.concurrent.ConcurrentHashMap<>();

  static final ConfigOption<String> TOPIC = TopicTableFactory.TOPIC;
  static final ConfigOption<String> CHANGELOG_MODE = TopicTableFactory.CHANGELOG_MODE;
  static final ConfigOption<String> KEY_COLUMN = TopicTableFactory.KEY_COLUMN;

  @Override
  public String factoryIdentifier() {
    return IDENTIFIER;
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
    for (String key : TopicTableFactory.CONFLUENT_PASS_THROUGH) options.add(ConfigOptions.key(key).stringType().noDefaultValue());
    return options;
  }

  private static Connection requireConnection() {
    Connection c = connection;
    if (c == null) throw new IllegalStateException("connector " + IDENTIFIER + " needs the broker connection of a KafkaRunner job");
    return c;
  }

  @Override
  public DynamicTableSource createDynamicTableSource(Context context) {
    FactoryUtil.TableFactoryHelper helper = FactoryUtil.createTableFactoryHelper(this, context);
    helper.validate();
    String changelog = helper.getOptions().get(CHANGELOG_MODE);
    if (changelog.equals("upsert") && context.getPrimaryKeyIndexes().length == 0) {
      throw new IllegalArgumentException("table `" + context.getObjectIdentifier().getObjectName() + "`: changelog.mode 'upsert' needs a PRIMARY KEY");
    }
    String topic = helper.getOptions().get(TOPIC);
    String group = requireConnection().groupPrefix + "flink-" + currentStatement + "-" + topic;
    return new Source(topic, group, changelog, helper.getOptions().getOptional(KEY_COLUMN).orElse(null),
        (RowType) context.getPhysicalRowDataType().getLogicalType(), List.of(), null);
  }

  @Override
  public DynamicTableSink createDynamicTableSink(Context context) {
    FactoryUtil.TableFactoryHelper helper = FactoryUtil.createTableFactoryHelper(this, context);
    helper.validate();
    String changelog = helper.getOptions().get(CHANGELOG_MODE);
    if (changelog.equals("upsert") && context.getPrimaryKeyIndexes().length == 0) {
      throw new IllegalArgumentException("table `" + context.getObjectIdentifier().getObjectName() + "`: changelog.mode 'upsert' needs a PRIMARY KEY");
    }
    return new Sink(helper.getOptions().get(TOPIC), changelog, helper.getOptions().getOptional(KEY_COLUMN).orElse(null),
        (RowType) context.getPhysicalRowDataType().getLogicalType(), context.getPrimaryKeyIndexes());
  }

  /**
   * Reads one topic from the earliest offset, continuously; commits its position (for the lag
   * shown by `npm run local`). The table's watermark is pushed into the source, so it is kept per
   * partition and the table's watermark is the smallest of them, as on Confluent: a quiet
   * partition holds it back, and records of a partition read late are not dropped as late.
   */
  static final class Source implements ScanTableSource, SupportsReadingMetadata, SupportsWatermarkPushDown {
    private final String topic;
    private final String group;
    private final String changelog;
    private final String keyColumn;
    private final RowType physical;
    private List<String> metadata;
    private DataType produced;
    private WatermarkStrategy<RowData> watermarks;

    Source(String topic, String group, String changelog, String keyColumn, RowType physical, List<String> metadata, DataType produced) {
      this.topic = topic;
      this.group = group;
      this.changelog = changelog;
      this.keyColumn = keyColumn;
      this.physical = physical;
      this.metadata = metadata;
      this.produced = produced;
    }

    @Override
    public ChangelogMode getChangelogMode() {
      // As TopicSource: full deletes (Flink 2.2.1's planner fails on key-only deletes in the ranking's plan).
      return TopicTableFactory.mode(changelog, topic, false);
    }

    @Override
    public Map<String, DataType> listReadableMetadata() {
      return TopicTableFactory.readableMetadata();
    }

    @Override
    public void applyReadableMetadata(List<String> metadataKeys, DataType producedDataType) {
      this.metadata = new ArrayList<>(metadataKeys);
      this.produced = producedDataType;
    }

    @Override
    public void applyWatermark(WatermarkStrategy<RowData> watermarkStrategy) {
      this.watermarks = watermarkStrategy;
    }

    @Override
    public ScanRuntimeProvider getScanRuntimeProvider(ScanContext context) {
      Connection c = requireConnection();
      WatermarkStrategy<RowData> strategy = watermarks != null ? watermarks : WatermarkStrategy.noWatermarks();
      LogicalType type = produced != null ? produced.getLogicalType() : physical;
      InternalTypeInfo<RowData> info = InternalTypeInfo.of(type);
      Decoder decoder = new Decoder(topic, changelog, keyColumn, physical, metadata, info);
      Properties props = c.clientProperties();
      // Without checkpoints the position is committed by the consumer itself, so the group's lag is visible.
      props.setProperty("enable.auto.commit", "true");
      props.setProperty("auto.commit.interval.ms", "1000");
      props.setProperty("partition.discovery.interval.ms", "-1");
      KafkaSource<RowData> source = KafkaSource.<RowData>builder()
          .setTopics(topic)
          .setGroupId(group)
          .setProperties(props)
          .setStartingOffsets(OffsetsInitializer.earliest())
          .setDeserializer(decoder)
          .build();
      String name = topic;
      return new DataStreamScanProvider() {
        @Override
        public DataStream<RowData> produceDataStream(ProviderContext providerContext, StreamExecutionEnvironment env) {
          return env.fromSource(source, strategy, "kafka " + name).setParallelism(1);
        }

        @Override
        public boolean isBounded() {
          return false;
        }
      };
    }

    @Override
    public DynamicTableSource copy() {
      Source copy = new Source(topic, group, changelog, keyColumn, physical, metadata, produced);
      copy.watermarks = watermarks;
      return copy;
    }

    @Override
    public String asSummaryString() {
      return IDENTIFIER + "(" + topic + ")";
    }
  }

  /** Kafka record → RowData, or nothing (logged) when the record cannot be read. */
  static final class Decoder implements KafkaRecordDeserializationSchema<RowData> {
    private static final ObjectMapper JSON = new ObjectMapper();
    private final String topic;
    private final String changelog;
    private final String keyColumn;
    private final RowType physical;
    private final List<String> metadata;
    private final TypeInformation<RowData> info;

    Decoder(String topic, String changelog, String keyColumn, RowType physical, List<String> metadata, TypeInformation<RowData> info) {
      this.topic = topic;
      this.changelog = changelog;
      this.keyColumn = keyColumn;
      this.physical = physical;
      this.metadata = metadata;
      this.info = info;
    }

    @Override
    public void deserialize(ConsumerRecord<byte[], byte[]> record, Collector<RowData> out) {
      RowData row;
      try {
        row = decode(record);
      } catch (RuntimeException | java.io.IOException e) {
        SKIPPED.computeIfAbsent(topic, t -> new AtomicLong()).incrementAndGet();
        System.err.println("adstream-kafka: skipped " + topic + "-" + record.partition() + "@" + record.offset() + ": " + e.getMessage());
        return;
      }
      // Outside the try: a failure downstream (a CAST of a malformed value) fails the job, as on Confluent.
      out.collect(row);
    }

    private RowData decode(ConsumerRecord<byte[], byte[]> record) throws java.io.IOException {
      List<String> names = physical.getFieldNames();
      int keyIndex = keyColumn == null ? -1 : names.indexOf(keyColumn);
      GenericRowData row = new GenericRowData(physical.getFieldCount() + metadata.size());
      byte[] value = record.value();
      if (value == null) {
        if (!changelog.equals("upsert")) throw new IllegalArgumentException("a tombstone on an append table");
        row.setRowKind(RowKind.DELETE);
        if (keyIndex < 0) {
          // An upsert table keyed by value columns: the key carries them.
          if (record.key() == null) throw new IllegalArgumentException("a tombstone without a key");
          @SuppressWarnings("unchecked")
          Map<String, Object> key = JSON.readValue(withoutHeader(record.key()), Map.class);
          for (int i = 0; i < names.size(); i++) {
            LogicalType t = physical.getTypeAt(i);
            row.setField(i, key.containsKey(names.get(i)) ? Values.toInternal(key.get(names.get(i)), t, names.get(i)) : null);
          }
        }
      } else {
        @SuppressWarnings("unchecked")
        Map<String, Object> json = JSON.readValue(withoutHeader(value), Map.class);
        for (int i = 0; i < names.size(); i++) {
          if (i == keyIndex) continue;
          String name = names.get(i);
          row.setField(i, Values.toInternal(json.get(name), physical.getTypeAt(i), name));
        }
      }
      if (keyIndex >= 0) {
        if (record.key() == null && !physical.getTypeAt(keyIndex).isNullable()) throw new IllegalArgumentException("no key for the key column `" + keyColumn + "`");
        row.setField(keyIndex, record.key());
      }
      for (int m = 0; m < metadata.size(); m++) {
        Object v;
        switch (metadata.get(m)) {
          case "timestamp":
            v = TimestampData.fromEpochMillis(record.timestamp());
            break;
          case "partition":
            v = record.partition();
            break;
          default:
            v = record.offset();
        }
        row.setField(physical.getFieldCount() + m, v);
      }
      return row;
    }

    @Override
    public TypeInformation<RowData> getProducedType() {
      return info;
    }
  }

  static byte[] withoutHeader(byte[] bytes) {
    if (bytes.length >= 5 && bytes[0] == 0) return java.util.Arrays.copyOfRange(bytes, 5, bytes.length);
    return bytes;
  }

  static byte[] withHeader(byte[] json, int schemaId) {
    ByteBuffer b = ByteBuffer.allocate(json.length + 5);
    b.put((byte) 0).putInt(schemaId).put(json);
    return b.array();
  }

  /** Writes rows to one topic: upserts keyed by the primary key, deletes as tombstones. */
  static final class Sink implements DynamicTableSink, SupportsBucketing {
    private final String topic;
    private final String changelog;
    private final String keyColumn;
    private final RowType physical;
    private final int[] primaryKey;

    Sink(String topic, String changelog, String keyColumn, RowType physical, int[] primaryKey) {
      this.topic = topic;
      this.changelog = changelog;
      this.keyColumn = keyColumn;
      this.physical = physical;
      this.primaryKey = primaryKey;
    }

    @Override
    public ChangelogMode getChangelogMode(ChangelogMode requestedMode) {
      return TopicTableFactory.mode(changelog, topic, true);
    }

    @Override
    public SinkRuntimeProvider getSinkRuntimeProvider(Context context) {
      Connection c = requireConnection();
      Properties props = c.clientProperties();
      props.setProperty("linger.ms", "20");
      KafkaSink<RowData> sink = KafkaSink.<RowData>builder()
          .setBootstrapServers(c.bootstrap)
          .setKafkaProducerConfig(props)
          .setDeliveryGuarantee(DeliveryGuarantee.AT_LEAST_ONCE)
          .setRecordSerializer(new Encoder(topic, changelog, keyColumn, physical, primaryKey, c.keySchemaId, c.valueSchemaId))
          .build();
      return SinkV2Provider.of(sink, 1);
    }

    @Override
    public DynamicTableSink copy() {
      return new Sink(topic, changelog, keyColumn, physical, primaryKey);
    }

    @Override
    public String asSummaryString() {
      return IDENTIFIER + "(" + topic + ")";
    }

    @Override
    public Set<TableDistribution.Kind> listAlgorithms() {
      return java.util.EnumSet.of(TableDistribution.Kind.HASH, TableDistribution.Kind.UNKNOWN);
    }

    @Override
    public boolean requiresBucketCount() {
      return false;
    }
  }

  /** RowData → Kafka record in the JSON Schema wire format. */
  static final class Encoder implements KafkaRecordSerializationSchema<RowData> {
    private static final ObjectMapper JSON = new ObjectMapper();
    private final String topic;
    private final String changelog;
    private final String keyColumn;
    private final RowType physical;
    private final int[] primaryKey;
    private final int keySchemaId;
    private final int valueSchemaId;

    Encoder(String topic, String changelog, String keyColumn, RowType physical, int[] primaryKey, int keySchemaId, int valueSchemaId) {
      this.topic = topic;
      this.changelog = changelog;
      this.keyColumn = keyColumn;
      this.physical = physical;
      this.primaryKey = primaryKey;
      this.keySchemaId = keySchemaId;
      this.valueSchemaId = valueSchemaId;
    }

    @Override
    public ProducerRecord<byte[], byte[]> serialize(RowData row, KafkaSinkContext context, Long timestamp) {
      try {
        List<String> names = physical.getFieldNames();
        int keyIndex = keyColumn == null ? -1 : names.indexOf(keyColumn);
        byte[] key = null;
        if (changelog.equals("upsert") && primaryKey.length > 0 && keyIndex < 0) {
          Map<String, Object> k = new LinkedHashMap<>();
          for (int i : primaryKey) k.put(names.get(i), wire(RowData.createFieldGetter(physical.getTypeAt(i), i).getFieldOrNull(row), physical.getTypeAt(i)));
          key = withHeader(JSON.writeValueAsBytes(k), keySchemaId);
        } else if (keyIndex >= 0 && !row.isNullAt(keyIndex)) {
          key = row.getBinary(keyIndex);
        }
        RowKind kind = row.getRowKind();
        byte[] value;
        if (kind == RowKind.DELETE || kind == RowKind.UPDATE_BEFORE) {
          if (!changelog.equals("upsert")) throw new IllegalStateException("a " + kind + " row for the append table " + topic);
          value = null;
        } else {
          Map<String, Object> v = new LinkedHashMap<>();
          for (int i = 0; i < names.size(); i++) {
            if (i == keyIndex) continue;
            v.put(names.get(i), wire(RowData.createFieldGetter(physical.getTypeAt(i), i).getFieldOrNull(row), physical.getTypeAt(i)));
          }
          value = withHeader(JSON.writeValueAsBytes(v), valueSchemaId);
        }
        return new ProducerRecord<>(topic, null, timestamp, key, value);
      } catch (java.io.IOException e) {
        throw new IllegalStateException(e);
      }
    }
  }

  /** Flink internal value → the JSON the wire carries: decimals as strings, timestamps as epoch ms. */
  static Object wire(Object internal, LogicalType type) {
    if (internal == null) return null;
    switch (type.getTypeRoot()) {
      case CHAR:
      case VARCHAR:
        return internal.toString();
      case DECIMAL:
        return ((DecimalData) internal).toBigDecimal().toPlainString();
      case TIMESTAMP_WITH_LOCAL_TIME_ZONE:
      case TIMESTAMP_WITHOUT_TIME_ZONE:
        return ((TimestampData) internal).getMillisecond();
      case BINARY:
      case VARBINARY:
        return new String((byte[]) internal, StandardCharsets.UTF_8);
      case ARRAY: {
        ArrayData array = (ArrayData) internal;
        LogicalType element = ((ArrayType) type).getElementType();
        ArrayData.ElementGetter getter = ArrayData.createElementGetter(element);
        List<Object> out = new ArrayList<>();
        for (int i = 0; i < array.size(); i++) out.add(wire(getter.getElementOrNull(array, i), element));
        return out;
      }
      case ROW: {
        RowType rowType = (RowType) type;
        RowData r = (RowData) internal;
        Map<String, Object> out = new LinkedHashMap<>();
        for (int i = 0; i < rowType.getFieldCount(); i++) {
          out.put(rowType.getFieldNames().get(i), wire(RowData.createFieldGetter(rowType.getTypeAt(i), i).getFieldOrNull(r), rowType.getTypeAt(i)));
        }
        return out;
      }
      case DOUBLE:
      case FLOAT:
        return internal;
      default:
        return internal instanceof BigDecimal b ? b.toPlainString() : internal;
    }
  }
}
