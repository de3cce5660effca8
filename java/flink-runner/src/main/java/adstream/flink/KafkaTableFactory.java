package adstream.flink;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.ByteBuffer;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.connector.base.DeliveryGuarantee;
import org.apache.flink.connector.kafka.sink.KafkaRecordSerializationSchema;
import org.apache.flink.connector.kafka.sink.KafkaSink;
import org.apache.flink.connector.kafka.source.KafkaSource;
import org.apache.flink.connector.kafka.source.enumerator.initializer.OffsetsInitializer;
import org.apache.flink.connector.kafka.source.reader.deserializer.KafkaRecordDeserializationSchema;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.table.connector.ProviderContext;
import org.apache.flink.table.connector.sink.DynamicTableSink;
import org.apache.flink.table.connector.sink.SinkV2Provider;
import org.apache.flink.table.connector.source.DataStreamScanProvider;
import org.apache.flink.table.connector.source.DynamicTableSource;
import org.apache.flink.table.connector.source.abilities.SupportsWatermarkPushDown;
import org.apache.flink.table.data.GenericRowData;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.runtime.typeutils.InternalTypeInfo;
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
public final class KafkaTableFactory extends AbstractTopicTableFactory {
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

  @Override
  public String factoryIdentifier() {
    return IDENTIFIER;
  }

  private static Connection requireConnection() {
    Connection c = connection;
    if (c == null) throw new IllegalStateException("connector " + IDENTIFIER + " needs the broker connection of a KafkaRunner job");
    return c;
  }

  @Override
  public DynamicTableSource createDynamicTableSource(Context context) {
    TopicTable table = topicTable(context);
    String group = requireConnection().groupPrefix + "flink-" + currentStatement + "-" + table.topic();
    return new Source(table, group);
  }

  @Override
  public DynamicTableSink createDynamicTableSink(Context context) {
    return new Sink(topicTable(context));
  }

  /**
   * Reads one topic from the earliest offset, continuously; commits its position (for the lag
   * shown by `npm run local`). The table's watermark is pushed into the source, so it is kept per
   * partition and the table's watermark is the smallest of them, as on Confluent: a quiet
   * partition holds it back, and records of a partition read late are not dropped as late.
   */
  static final class Source extends TopicScan implements SupportsWatermarkPushDown {
    private final String group;
    private WatermarkStrategy<RowData> watermarks;

    Source(TopicTable table, String group) {
      super(table);
      this.group = group;
    }

    @Override
    public void applyWatermark(WatermarkStrategy<RowData> watermarkStrategy) {
      this.watermarks = watermarkStrategy;
    }

    @Override
    public ScanRuntimeProvider getScanRuntimeProvider(ScanContext context) {
      Connection c = requireConnection();
      WatermarkStrategy<RowData> strategy = watermarks != null ? watermarks : WatermarkStrategy.noWatermarks();
      InternalTypeInfo<RowData> info = InternalTypeInfo.of(producedType());
      Decoder decoder = new Decoder(table, metadata, info);
      Properties props = c.clientProperties();
      // Without checkpoints the position is committed by the consumer itself, so the group's lag is visible.
      props.setProperty("enable.auto.commit", "true");
      props.setProperty("auto.commit.interval.ms", "1000");
      props.setProperty("partition.discovery.interval.ms", "-1");
      String name = table.topic();
      KafkaSource<RowData> source = KafkaSource.<RowData>builder()
          .setTopics(name)
          .setGroupId(group)
          .setProperties(props)
          .setStartingOffsets(OffsetsInitializer.earliest())
          .setDeserializer(decoder)
          .build();
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
      Source copy = withStateOf(new Source(table, group));
      copy.watermarks = watermarks;
      return copy;
    }

    @Override
    public String asSummaryString() {
      return IDENTIFIER + "(" + table.topic() + ")";
    }
  }

  /** Kafka record → RowData, or nothing (logged) when the record cannot be read. */
  static final class Decoder implements KafkaRecordDeserializationSchema<RowData> {
    private static final ObjectMapper JSON = new ObjectMapper();
    private final TopicTable table;
    private final List<String> metadata;
    private final TypeInformation<RowData> info;

    Decoder(TopicTable table, List<String> metadata, TypeInformation<RowData> info) {
      this.table = table;
      this.metadata = metadata;
      this.info = info;
    }

    @Override
    public void deserialize(ConsumerRecord<byte[], byte[]> record, Collector<RowData> out) {
      RowData row;
      try {
        row = decode(record);
      } catch (RuntimeException | java.io.IOException e) {
        SKIPPED.computeIfAbsent(table.topic(), t -> new AtomicLong()).incrementAndGet();
        System.err.println("adstream-kafka: skipped " + table.topic() + "-" + record.partition() + "@" + record.offset() + ": " + e.getMessage());
        return;
      }
      // Outside the try: a failure downstream (a CAST of a malformed value) fails the job, as on Confluent.
      out.collect(row);
    }

    private RowData decode(ConsumerRecord<byte[], byte[]> record) throws java.io.IOException {
      RowType physical = table.physical();
      String keyColumn = table.keyColumn();
      List<String> names = physical.getFieldNames();
      int keyIndex = keyColumn == null ? -1 : names.indexOf(keyColumn);
      GenericRowData row = new GenericRowData(physical.getFieldCount() + metadata.size());
      byte[] value = record.value();
      if (value == null) {
        if (!table.changelog().equals("upsert")) throw new IllegalArgumentException("a tombstone on an append table");
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
      setMetadata(row, physical, metadata, record.timestamp(), record.partition(), record.offset());
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
  static final class Sink extends TopicWrite {
    Sink(TopicTable table) {
      super(table);
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
          .setRecordSerializer(new Encoder(table, c.keySchemaId, c.valueSchemaId))
          .build();
      return SinkV2Provider.of(sink, 1);
    }

    @Override
    public DynamicTableSink copy() {
      return new Sink(table);
    }

    @Override
    public String asSummaryString() {
      return IDENTIFIER + "(" + table.topic() + ")";
    }
  }

  /** RowData → Kafka record in the JSON Schema wire format (decimals as strings, timestamps as epoch ms). */
  static final class Encoder implements KafkaRecordSerializationSchema<RowData> {
    private static final ObjectMapper JSON = new ObjectMapper();
    private final TopicTable table;
    private final int keySchemaId;
    private final int valueSchemaId;

    Encoder(TopicTable table, int keySchemaId, int valueSchemaId) {
      this.table = table;
      this.keySchemaId = keySchemaId;
      this.valueSchemaId = valueSchemaId;
    }

    @Override
    public ProducerRecord<byte[], byte[]> serialize(RowData row, KafkaSinkContext context, Long timestamp) {
      try {
        RowType physical = table.physical();
        String keyColumn = table.keyColumn();
        boolean upsert = table.changelog().equals("upsert");
        List<String> names = physical.getFieldNames();
        int keyIndex = keyColumn == null ? -1 : names.indexOf(keyColumn);
        byte[] key = null;
        if (upsert && table.primaryKey().length > 0 && keyIndex < 0) {
          Map<String, Object> k = new LinkedHashMap<>();
          for (int i : table.primaryKey()) k.put(names.get(i), Values.fieldJson(row, physical, i, true));
          key = withHeader(JSON.writeValueAsBytes(k), keySchemaId);
        } else if (keyIndex >= 0 && !row.isNullAt(keyIndex)) {
          key = row.getBinary(keyIndex);
        }
        RowKind kind = row.getRowKind();
        byte[] value;
        if (kind == RowKind.DELETE || kind == RowKind.UPDATE_BEFORE) {
          if (!upsert) throw new IllegalStateException("a " + kind + " row for the append table " + table.topic());
          value = null;
        } else {
          Map<String, Object> v = new LinkedHashMap<>();
          for (int i = 0; i < names.size(); i++) {
            if (i != keyIndex) v.put(names.get(i), Values.fieldJson(row, physical, i, true));
          }
          value = withHeader(JSON.writeValueAsBytes(v), valueSchemaId);
        }
        return new ProducerRecord<>(table.topic(), null, timestamp, key, value);
      } catch (java.io.IOException e) {
        throw new IllegalStateException(e);
      }
    }
  }
}
