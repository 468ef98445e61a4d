// ApiVersions: the version ranges of every implemented API, from the protocol's one table.

import type { ApiVersionsRequest, ApiVersionsResponse } from '../../protocol/apis/api-versions.ts';
import { ErrorCode } from '../../protocol/errors.ts';
import { supportedVersions } from '../../protocol/index.ts';
import type { RequestContext } from '../context.ts';

const API_KEYS = supportedVersions();

export function apiVersionsResponse(errorCode: number): ApiVersionsResponse {
  return { errorCode, apiKeys: API_KEYS, throttleTimeMs: 0, supportedFeatures: [], finalizedFeaturesEpoch: -1, finalizedFeatures: [] };
}

export async function handleApiVersions(_ctx: RequestContext, _request: ApiVersionsRequest): Promise<ApiVersionsResponse> {
  return apiVersionsResponse(ErrorCode.NONE);
}
