// InitProducerId for idempotent producers: a new producer id from the cluster model's durable
// counter, or (KIP-360, v3+) the same id with its epoch bumped. Transactional ids are not
// supported yet.

import type { InitProducerIdRequest, InitProducerIdResponse } from '../../protocol/apis/init-producer-id.ts';
import { ErrorCode } from '../../protocol/errors.ts';
import type { RequestContext } from '../context.ts';

const MAX_PRODUCER_EPOCH = 32767;

export async function handleInitProducerId(ctx: RequestContext, request: InitProducerIdRequest): Promise<InitProducerIdResponse> {
  if (request.transactionalId !== null) {
    return { throttleTimeMs: 0, errorCode: ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, producerId: -1, producerEpoch: -1 };
  }
  if (request.producerId >= 0 && request.producerEpoch >= 0 && request.producerEpoch < MAX_PRODUCER_EPOCH - 1) {
    return { throttleTimeMs: 0, errorCode: ErrorCode.NONE, producerId: request.producerId, producerEpoch: request.producerEpoch + 1 };
  }
  const producerId = await ctx.broker.model.allocateProducerId();
  return { throttleTimeMs: 0, errorCode: ErrorCode.NONE, producerId, producerEpoch: 0 };
}
