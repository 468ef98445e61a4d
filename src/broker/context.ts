// What a handler sees: the broker's parts and the request's header.

import type { WharfConfig } from '../config/config.ts';
import type { ClusterModel } from '../metadata/cluster-model.ts';
import type { GroupCoordinator } from '../groups/coordinator.ts';
import type { TopicRegistry } from './topics.ts';
import type { Connection } from './connection.ts';
import type { ReadLease } from '../storage/stream.ts';

export interface BrokerParts {
  config: WharfConfig;
  model: ClusterModel;
  topics: TopicRegistry;
  groups: GroupCoordinator;
  clusterId: string;
  /** Aborted when the broker begins to stop; long polls end early on it. */
  stopping: AbortSignal;
}

export interface RequestContext {
  broker: BrokerParts;
  apiVersion: number;
  clientId: string | null;
  connection: Connection;
  /** Pins of memory the response's chunks point into, released once they are written. */
  responseLeases: ReadLease[];
}
