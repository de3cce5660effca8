import { EventContract } from './contract';
import { EVENT_CONTRACTS } from './events';
import { FieldSpec, flinkTypeOf } from './fields';

function wireType(spec: FieldSpec): string {
  switch (spec.kind) {
    case 'string':
      return `string (≤ ${spec.maxLength})`;
    case 'enum':
      return spec.values.map((v) => `\`${v}\``).join(' \\| ');
    case 'int64':
      return 'integer (int64)';
    case 'decimal':
      return `decimal string (${spec.precision},${spec.scale})`;
    case 'timestamp-millis':
      return 'integer, epoch ms';
    case 'double':
      return 'number';
  }
}

/** The README section documenting one contract: topic, meaning, and a field table. */
export function contractMarkdown(contract: EventContract): string {
  const rows = Object.entries(contract.fields).map(
    ([name, spec]) => `| \`${name}\` | ${wireType(spec)} | \`${flinkTypeOf(spec)}\` | ${spec.required ? 'yes' : 'no'} | ${spec.description} |`,
  );
  return [
    `### ${contract.name} — topic \`${contract.topic}\``,
    '',
    contract.description,
    '',
    '| field | JSON type | Flink type | required | meaning |',
    '| --- | --- | --- | --- | --- |',
    ...rows,
  ].join('\n');
}

/** The README section documenting every registered contract, generated from the code. */
export function contractsMarkdown(): string {
  return EVENT_CONTRACTS.map(contractMarkdown).join('\n\n');
}
