// Group metrics, in prom-client's default registry (served at /metrics with the broker's):
// the number of consumer groups in each state, computed when scraped.

import { Gauge } from 'prom-client';
import { GroupState } from './types.ts';

type StateCounter = (counts: Map<GroupState, number>) => void;

const counters = new Set<StateCounter>();

export const groupsByState = new Gauge({
  name: 'wharf_consumer_groups',
  help: 'Consumer groups (classic protocol) by state; groups known only by their committed offsets count as Empty.',
  labelNames: ['state'] as const,
  collect() {
    const counts = new Map<GroupState, number>();
    for (const state of Object.values(GroupState)) counts.set(state, 0);
    for (const count of counters) count(counts);
    for (const [state, n] of counts) this.set({ state }, n);
  },
});

/** Adds a coordinator's groups to the gauge; returns the function that removes them. */
export function countGroups(counter: StateCounter): () => void {
  counters.add(counter);
  return () => counters.delete(counter);
}
