package adstream.flink;

import java.math.BigDecimal;
import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.time.LocalDateTime;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.flink.table.data.ArrayData;
import org.apache.flink.table.data.DecimalData;
import org.apache.flink.table.data.GenericArrayData;
import org.apache.flink.table.data.GenericRowData;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.data.StringData;
import org.apache.flink.table.data.TimestampData;
import org.apache.flink.table.types.logical.ArrayType;
import org.apache.flink.table.types.logical.DecimalType;
import org.apache.flink.table.types.logical.LogicalType;
import org.apache.flink.table.types.logical.RowType;

/**
 * Converts between the JSON values of the scenario records (as the JSON Schema wire format
 * carries them: decimals as strings, TIMESTAMP_LTZ as epoch milliseconds) and Flink's internal
 * row data. Anything it does not know is an error naming the column.
 */
final class Values {
  private static final DateTimeFormatter LTZ = DateTimeFormatter.ofPattern("yyyy-MM-dd'T'HH:mm:ss.SSS'Z'").withZone(ZoneOffset.UTC);
  private static final DateTimeFormatter NTZ = DateTimeFormatter.ofPattern("yyyy-MM-dd HH:mm:ss.SSS");

  private Values() {}

  static Object toInternal(Object json, LogicalType type, String column) {
    if (json == null) {
      if (!type.isNullable()) throw new IllegalArgumentException("column `" + column + "` is NOT NULL but the record has no value for it");
      return null;
    }
    switch (type.getTypeRoot()) {
      case CHAR:
      case VARCHAR:
        if (!(json instanceof String s)) throw bad(column, type, json);
        return StringData.fromString(s);
      case BOOLEAN:
        if (!(json instanceof Boolean)) throw bad(column, type, json);
        return json;
      case TINYINT:
        return number(json, column, type).byteValue();
      case SMALLINT:
        return number(json, column, type).shortValue();
      case INTEGER:
        return number(json, column, type).intValue();
      case BIGINT:
        return number(json, column, type).longValueExact();
      case FLOAT:
        return number(json, column, type).floatValue();
      case DOUBLE:
        return number(json, column, type).doubleValue();
      case DECIMAL: {
        DecimalType d = (DecimalType) type;
        BigDecimal value = json instanceof String s ? new BigDecimal(s) : number(json, column, type);
        DecimalData data = DecimalData.fromBigDecimal(value, d.getPrecision(), d.getScale());
        if (data == null) throw bad(column, type, json);
        return data;
      }
      case TIMESTAMP_WITH_LOCAL_TIME_ZONE:
        if (json instanceof String s) return TimestampData.fromInstant(Instant.parse(s));
        return TimestampData.fromEpochMillis(number(json, column, type).longValueExact());
      case TIMESTAMP_WITHOUT_TIME_ZONE:
        if (json instanceof String s) return TimestampData.fromLocalDateTime(LocalDateTime.parse(s.replace(' ', 'T')));
        return TimestampData.fromEpochMillis(number(json, column, type).longValueExact());
      case BINARY:
      case VARBINARY:
        if (!(json instanceof String s)) throw bad(column, type, json);
        return s.getBytes(StandardCharsets.UTF_8);
      case ARRAY: {
        if (!(json instanceof List<?> list)) throw bad(column, type, json);
        LogicalType element = ((ArrayType) type).getElementType();
        Object[] out = new Object[list.size()];
        for (int i = 0; i < out.length; i++) out[i] = toInternal(list.get(i), element, column + "[" + i + "]");
        return new GenericArrayData(out);
      }
      case ROW: {
        if (!(json instanceof Map<?, ?> map)) throw bad(column, type, json);
        @SuppressWarnings("unchecked")
        Map<String, Object> m = (Map<String, Object>) map;
        return row(m, (RowType) type, column + ".");
      }
      default:
        throw new IllegalArgumentException("column `" + column + "`: type " + type + " is not supported by the local runner");
    }
  }

  /** A row of `type` from a JSON object; unknown fields are an error (additionalProperties: false). */
  static GenericRowData row(Map<String, Object> json, RowType type, String prefix) {
    GenericRowData row = new GenericRowData(type.getFieldCount());
    for (String name : json.keySet()) {
      if (!type.getFieldNames().contains(name)) throw new IllegalArgumentException("field `" + prefix + name + "` is not a column of the table (columns: " + type.getFieldNames() + ")");
    }
    for (int i = 0; i < type.getFieldCount(); i++) {
      String name = type.getFieldNames().get(i);
      row.setField(i, toInternal(json.get(name), type.getTypeAt(i), prefix + name));
    }
    return row;
  }

  private static BigDecimal number(Object json, String column, LogicalType type) {
    if (json instanceof Number n) return new BigDecimal(n.toString());
    throw bad(column, type, json);
  }

  private static IllegalArgumentException bad(String column, LogicalType type, Object json) {
    return new IllegalArgumentException("column `" + column + "` of type " + type + " cannot hold the value " + json);
  }

  /**
   * Flink internal value to a JSON-ready value: decimals as strings, timestamps as epoch
   * milliseconds (the wire format of `adstream-kafka`) or as text (the runner's answers).
   */
  static Object toJson(Object internal, LogicalType type, boolean epochMillis) {
    if (internal == null) return null;
    switch (type.getTypeRoot()) {
      case CHAR:
      case VARCHAR:
        return internal.toString();
      case DECIMAL:
        return ((DecimalData) internal).toBigDecimal().toPlainString();
      case TIMESTAMP_WITH_LOCAL_TIME_ZONE:
        return epochMillis ? ((TimestampData) internal).getMillisecond() : LTZ.format(((TimestampData) internal).toInstant());
      case TIMESTAMP_WITHOUT_TIME_ZONE:
        return epochMillis ? ((TimestampData) internal).getMillisecond() : NTZ.format(((TimestampData) internal).toLocalDateTime());
      case BINARY:
      case VARBINARY:
        return new String((byte[]) internal, StandardCharsets.UTF_8);
      case ARRAY: {
        ArrayData array = (ArrayData) internal;
        LogicalType element = ((ArrayType) type).getElementType();
        ArrayData.ElementGetter getter = ArrayData.createElementGetter(element);
        List<Object> out = new ArrayList<>();
        for (int i = 0; i < array.size(); i++) out.add(toJson(getter.getElementOrNull(array, i), element, epochMillis));
        return out;
      }
      case ROW:
        return rowJson((RowData) internal, (RowType) type, epochMillis);
      default:
        return internal;
    }
  }

  /** Column `i` of a row as a JSON-ready value (see {@link #toJson}). */
  static Object fieldJson(RowData row, RowType type, int i, boolean epochMillis) {
    return toJson(RowData.createFieldGetter(type.getTypeAt(i), i).getFieldOrNull(row), type.getTypeAt(i), epochMillis);
  }

  static Map<String, Object> rowJson(RowData row, RowType type, boolean epochMillis) {
    Map<String, Object> out = new LinkedHashMap<>();
    for (int i = 0; i < type.getFieldCount(); i++) out.put(type.getFieldNames().get(i), fieldJson(row, type, i, epochMillis));
    return out;
  }
}
