import { Testing, TerraformStack } from 'cdktf';
import { FlinkStatement } from '../../.gen/providers/confluent/flink-statement';
import {
  FLINK_POLICY_RULES,
  flinkStatementNoInlineCredentials,
  flinkStatementPropertiesAllowList,
  productionFlinkStatementPreventDestroy,
} from '../../constructs/policy/rules/flink';
import { flinkStack } from './helpers';

function statement(props: Partial<ConstructorParameters<typeof FlinkStatement>[2]> = {}): FlinkStatement {
  const stack = new TerraformStack(Testing.app(), 'policy');
  return new FlinkStatement(stack, 'statement', {
    statement: 'INSERT INTO `x` SELECT 1',
    statementName: 'adstream-prod-x-v1-01',
    properties: { 'sql.current-catalog': 'c', 'sql.current-database': 'd' },
    ...props,
  });
}

describe('Flink policy rules', () => {
  it('exports every rule for the policy aspect', () => {
    expect(FLINK_POLICY_RULES.map((r) => r.id)).toEqual(['ADS-FL1', 'ADS-FL2', 'ADS-FL3']);
  });

  describe('ADS-FL1 production statements cannot be destroyed', () => {
    it('flags a production statement without prevent_destroy', () => {
      expect(productionFlinkStatementPreventDestroy.check(statement(), { production: true })).toMatch(/prevent_destroy/);
    });
    it('accepts prevent_destroy in production and anything outside production', () => {
      expect(productionFlinkStatementPreventDestroy.check(statement({ lifecycle: { preventDestroy: true } }), { production: true })).toBeUndefined();
      expect(productionFlinkStatementPreventDestroy.check(statement(), { production: false })).toBeUndefined();
    });
    it('finds nothing to flag on the production FlinkStack', () => {
      const stack = flinkStack({ name: 'prod', production: true });
      const findings = stack.node
        .findAll()
        .map((n) => productionFlinkStatementPreventDestroy.check(n, { production: true }))
        .filter(Boolean);
      expect(findings).toEqual([]);
    });
  });

  describe('ADS-FL2 statement properties come from the sql.* allow-list', () => {
    it('flags table.exec.* and parallelism properties', () => {
      expect(
        flinkStatementPropertiesAllowList.check(statement({ properties: { 'table.exec.state.ttl': '1 h', 'parallelism.default': '4' } }), {
          production: false,
        }),
      ).toMatch(/table\.exec\.state\.ttl, parallelism\.default/);
    });
    it('accepts sql.* properties', () => {
      expect(flinkStatementPropertiesAllowList.check(statement({ properties: { 'sql.state-ttl': '6 h' } }), { production: false })).toBeUndefined();
    });
  });

  describe('ADS-FL3 no credentials on statements', () => {
    it('flags a statement carrying its own credentials', () => {
      expect(flinkStatementNoInlineCredentials.check(statement({ credentials: { key: 'KEY', secret: 'SECRET' } }), { production: false })).toMatch(/provider/);
    });
    it('accepts provider-level credentials', () => {
      expect(flinkStatementNoInlineCredentials.check(statement(), { production: false })).toBeUndefined();
    });
  });
});
