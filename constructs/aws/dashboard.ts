import { Construct } from 'constructs';
import { CloudwatchDashboard } from '@cdktf/provider-aws/lib/cloudwatch-dashboard';
import { alarmArn } from './alarm';
import type { AwsLocation } from './arn';
import type { KafkaTrigger } from './kafka-trigger';
import { SILENCE_METRICS } from './silence-alarms';
import { WORKER_METRICS_NAMESPACE, WorkerFunction } from './worker-function';

/** One dashboard widget in CloudWatch's dashboard-body shape. */
interface Widget {
  readonly type: 'metric' | 'text' | 'alarm';
  readonly width: number;
  readonly height: number;
  readonly properties: Record<string, unknown>;
}

/** A metric line of a metric widget: [namespace, name, dimension, value, …, options]. */
type MetricLine = Array<string | Record<string, unknown>>;

/** Props of {@link MoneyDashboard}. */
export interface MoneyDashboardProps {
  /** Dashboard name, e.g. `adstream-prod`. */
  readonly dashboardName: string;
  /** Region and account of the metrics and alarms. */
  readonly location: AwsLocation;
  /** The function that charges clicks. */
  readonly clickBalance: WorkerFunction;
  /** The function that refunds duplicates. */
  readonly compensation: WorkerFunction;
  /** The outbox sweep (backlog and budget-paused campaigns). */
  readonly outboxSweep: WorkerFunction;
  /** The Flink status check. */
  readonly flinkStatus: WorkerFunction;
  /** The trigger status check. */
  readonly triggerStatus: WorkerFunction;
  /** Every worker function (errors, duration). */
  readonly functions: readonly WorkerFunction[];
  /** The Kafka triggers (lag, oldest record age). */
  readonly triggers: readonly KafkaTrigger[];
  /** Flink statements the check reports on. */
  readonly flinkStatements: readonly string[];
  /** The pipeline's alarms (workers stack): shown in one status grid. */
  readonly pipelineAlarmNames: readonly string[];
  /** The stateful tier's alarms (storage stack): a status grid and one graph each. */
  readonly statefulAlarmNames: readonly string[];
}

/** CloudWatch accepts at most this many alarms in one alarm-status widget. */
const ALARMS_PER_WIDGET = 100;

/**
 * The environment's CloudWatch dashboard, read top to bottom the way money flows: clicks
 * charged, refunded and voided per minute, the duplicate rate, dead letters, budget pauses,
 * consumer lag and the oldest unprocessed record per trigger, the outbox backlog, the Flink
 * statements, function errors and duration, then the status of every alarm and one graph per
 * stateful-tier alarm (RDS, RDS Proxy, ElastiCache, NAT; they live in the storage stack and
 * are referred to by ARN, which is known from their names).
 */
export class MoneyDashboard extends Construct {
  /** Dashboard name. */
  public readonly dashboardName: string;
  /** The widgets, in layout order (tests read them). */
  public readonly widgets: readonly Widget[];

  constructor(scope: Construct, id: string, props: MoneyDashboardProps) {
    super(scope, id);
    const region = props.location.region;
    const custom = (worker: WorkerFunction, metric: string, options: Record<string, unknown> = {}): MetricLine => [
      WORKER_METRICS_NAMESPACE,
      metric,
      'service',
      worker.serviceName,
      { label: `${worker.serviceName} ${metric}`, ...options },
    ];
    const graph = (title: string, metrics: MetricLine[], options: Record<string, unknown> = {}, width = 8): Widget => ({
      type: 'metric',
      width,
      height: 6,
      properties: { title, region, view: 'timeSeries', stacked: false, period: 60, stat: 'Sum', metrics, ...options },
    });
    const consumers = props.triggers.map((t) => t.worker);
    const arns = (names: readonly string[]) => names.map((name) => alarmArn(props.location, name));
    const alarmGrids = (title: string, names: readonly string[]): Widget[] =>
      Array.from({ length: Math.ceil(names.length / ALARMS_PER_WIDGET) }, (_, i) => ({
        type: 'alarm',
        width: 24,
        height: Math.min(8, 2 + Math.ceil(Math.min(ALARMS_PER_WIDGET, names.length - i * ALARMS_PER_WIDGET) / 4)),
        properties: {
          title: i === 0 ? title : `${title} (${i + 1})`,
          alarms: arns(names.slice(i * ALARMS_PER_WIDGET, (i + 1) * ALARMS_PER_WIDGET)),
          sortBy: 'stateUpdatedTimestamp',
        },
      }));

    const widgets: Widget[] = [
      {
        type: 'text',
        width: 24,
        height: 2,
        properties: {
          markdown: `# ${props.dashboardName}: the money path\nClicks charged and refunded, what is waiting, and the alarms. What to do when one fires: docs/operations.md in the adstream repository.`,
        },
      },
      graph('Clicks charged, refunded and voided per minute', [
        custom(props.clickBalance, 'ClicksCharged'),
        custom(props.compensation, 'ClicksRefunded'),
        custom(props.compensation, 'ClicksVoided'),
      ]),
      graph(
        'Duplicate click rate (per hour)',
        [
          [{ expression: 'IF(charged > 0, duplicates / charged, 0)', label: 'Duplicates per charged click', id: 'rate' }],
          [WORKER_METRICS_NAMESPACE, 'DuplicateClicks', 'service', props.compensation.serviceName, { id: 'duplicates', visible: false }],
          [WORKER_METRICS_NAMESPACE, 'ClicksCharged', 'service', props.clickBalance.serviceName, { id: 'charged', visible: false }],
        ],
        { period: 3600 },
      ),
      graph(
        'Dead-lettered records per minute',
        consumers.map((worker) => custom(worker, 'RecordsDeadLettered')),
      ),
      graph('Budget: campaigns paused by budget, outbox rows published', [
        custom(props.outboxSweep, SILENCE_METRICS.campaignsBudgetPaused, { stat: 'Maximum' }),
        ...[props.clickBalance, props.outboxSweep].map((worker) => custom(worker, 'OutboxPublished', { yAxis: 'right' })),
      ]),
      graph(
        'Consumer lag per trigger (records)',
        props.triggers.map((t): MetricLine => [
          'AWS/Lambda',
          'OffsetLag',
          'FunctionName',
          t.worker.functionName,
          { label: `${t.topic} → ${t.worker.serviceName}` },
        ]),
        { stat: 'Maximum', period: 300 },
      ),
      graph(
        'Oldest unprocessed record per trigger (seconds)',
        props.triggers.map((t): MetricLine => custom(t.worker, SILENCE_METRICS.oldestRecordAge, { label: `${t.topic} → ${t.worker.serviceName}` })),
        { stat: 'Maximum', period: 300 },
      ),
      graph(
        'Outbox backlog',
        [
          custom(props.outboxSweep, SILENCE_METRICS.outboxBacklog),
          custom(props.outboxSweep, SILENCE_METRICS.outboxFailing),
          custom(props.outboxSweep, SILENCE_METRICS.outboxOldestAge, { yAxis: 'right' }),
        ],
        { stat: 'Maximum', period: 300 },
      ),
      graph(
        'Flink statements RUNNING (1) or not (0)',
        props.flinkStatements.map((statement): MetricLine => [
          WORKER_METRICS_NAMESPACE,
          SILENCE_METRICS.flinkRunning,
          'service',
          props.flinkStatus.serviceName,
          'statement',
          statement,
          { label: statement },
        ]),
        { stat: 'Minimum', period: 300, yAxis: { left: { min: 0, max: 1 } } },
      ),
      graph(
        'Kafka triggers consuming (1) or not (0)',
        props.triggers.map((t): MetricLine => [
          WORKER_METRICS_NAMESPACE,
          SILENCE_METRICS.triggerHealthy,
          'service',
          props.triggerStatus.serviceName,
          'trigger',
          t.worker.serviceName,
          { label: `${t.topic} → ${t.worker.serviceName}` },
        ]),
        { stat: 'Minimum', period: 300, yAxis: { left: { min: 0, max: 1 } } },
      ),
      graph(
        'Function errors',
        props.functions.map((worker): MetricLine => ['AWS/Lambda', 'Errors', 'FunctionName', worker.functionName, { label: worker.serviceName }]),
        { period: 300 },
        12,
      ),
      graph(
        'Function duration p99 (ms)',
        props.functions.map((worker): MetricLine => ['AWS/Lambda', 'Duration', 'FunctionName', worker.functionName, { label: worker.serviceName }]),
        { stat: 'p99', period: 300 },
        12,
      ),
      ...alarmGrids('Pipeline alarms', props.pipelineAlarmNames),
      ...alarmGrids('Stateful tier alarms (RDS, RDS Proxy, ElastiCache, NAT)', props.statefulAlarmNames),
      ...props.statefulAlarmNames.map((name): Widget => ({
        type: 'metric',
        width: 6,
        height: 5,
        properties: {
          title: name.replace(/^adstream-[a-z0-9-]+?-(?=ledger|cache|nat)/, ''),
          region,
          view: 'timeSeries',
          annotations: { alarms: [alarmArn(props.location, name)] },
        },
      })),
    ];
    this.widgets = widgets;
    this.dashboardName = props.dashboardName;

    new CloudwatchDashboard(this, 'dashboard', { dashboardName: props.dashboardName, dashboardBody: JSON.stringify({ widgets: layout(widgets) }) });
  }
}

/** Places widgets left to right on CloudWatch's 24-column grid, wrapping to a new row. */
function layout(widgets: readonly Widget[]): Array<Widget & { x: number; y: number }> {
  let x = 0;
  let y = 0;
  let rowHeight = 0;
  return widgets.map((widget) => {
    if (x + widget.width > 24) {
      x = 0;
      y += rowHeight;
      rowHeight = 0;
    }
    const placed = { ...widget, x, y };
    x += widget.width;
    rowHeight = Math.max(rowHeight, widget.height);
    return placed;
  });
}
