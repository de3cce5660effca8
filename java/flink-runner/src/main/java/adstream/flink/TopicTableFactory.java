package adstream.flink;

import java.io.IOException;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.flink.api.connector.sink2.Sink;
import org.apache.flink.api.connector.sink2.SinkWriter;
import org.apache.flink.api.connector.sink2.WriterInitContext;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.table.connector.ProviderContext;
import org.apache.flink.table.connector.sink.DynamicTableSink;
import org.apache.flink.table.connector.sink.SinkV2Provider;
import org.apache.flink.table.connector.source.DataStreamScanProvider;
import org.apache.flink.table.connector.source.DynamicTableSource;
import org.apache.flink.table.data.GenericRowData;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.runtime.typeutils.InternalTypeInfo;
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
public final class TopicTableFactory extends AbstractTopicTableFactory {
  @Override
  public String factoryIdentifier() {
    return "adstream-topic";
  }

  @Override
  public DynamicTableSource createDynamicTableSource(Context context) {
    return new TopicSource(topicTable(context));
  }

  @Override
  public DynamicTableSink createDynamicTableSink(Context context) {
    return new TopicSink(topicTable(context));
  }

  /** Source of one topic: the scenario's records of it, in arrival order. */
  static final class TopicSource extends TopicScan {
    TopicSource(TopicTable table) {
      super(table);
    }

    private List<RowData> rows() {
      String topic = table.topic();
      String keyColumn = table.keyColumn();
      RowType physical = table.physical();
      List<RowData> rows = new ArrayList<>();
      int keyIndex = keyColumn == null ? -1 : physical.getFieldNames().indexOf(keyColumn);
      if (keyColumn != null && keyIndex < 0) throw new IllegalArgumentException("table `" + topic + "`: key.column `" + keyColumn + "` is not a column");
      for (Topics.Input in : Topics.inputs(topic)) {
        GenericRowData row = new GenericRowData(physical.getFieldCount() + metadata.size());
        String where = "topic " + topic + " partition " + in.partition() + " offset " + in.offset() + ": ";
        try {
          if (in.value() == null) {
            if (!table.changelog().equals("upsert")) throw new IllegalArgumentException("a tombstone (null value) on an append table");
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
        setMetadata(row, physical, metadata, in.timestamp(), in.partition(), in.offset());
        rows.add(row);
      }
      return rows;
    }

    @Override
    public ScanRuntimeProvider getScanRuntimeProvider(ScanContext context) {
      LogicalType type = producedType();
      String topic = table.topic();
      return new DataStreamScanProvider() {
        @Override
        public DataStream<RowData> produceDataStream(ProviderContext providerContext, StreamExecutionEnvironment env) {
          List<RowData> rows = rows();
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
      return withStateOf(new TopicSource(table));
    }

    @Override
    public String asSummaryString() {
      return "adstream-topic(" + table.topic() + ")";
    }
  }

  /** Sink of one topic: records every row and its change flag. */
  static final class TopicSink extends TopicWrite {
    TopicSink(TopicTable table) {
      super(table);
    }

    @Override
    public SinkRuntimeProvider getSinkRuntimeProvider(Context context) {
      return SinkV2Provider.of(new Recorder(table.topic(), table.physical()));
    }

    @Override
    public DynamicTableSink copy() {
      return new TopicSink(table);
    }

    @Override
    public String asSummaryString() {
      return "adstream-topic(" + table.topic() + ")";
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
          Topics.emit(topic, new Topics.Output(row.getRowKind().shortString(), Values.rowJson(row, type, false)));
        }

        @Override
        public void flush(boolean endOfInput) {}

        @Override
        public void close() {}
      };
    }
  }
}
