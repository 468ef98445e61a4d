// The consumer group coordinator: what the broker's group and offset handlers call.
export { GroupCoordinator, type GroupCoordinatorOptions } from './coordinator.ts';
export type { CommittedOffset } from './offset-records.ts';
export * from './types.ts';
