/** Event contracts shared by the infrastructure, the Flink SQL checks and the Lambda workers. */
export * from './fields';
export * from './contract';
export * from './events';
export * from './rankings';
