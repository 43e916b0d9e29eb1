/**
 * HTTP through the mesh at a constant arrival rate: POST requestBytes, expect 200 and a body
 * of responseBytes, on keep-alive connections (scenarios http-20, http-200, http-2000).
 *   k6 run -e TARGET_URL=http://B:8080 -e SCENARIO=http-2000 http.ts
 */
import http from 'k6/http';
import { optionsFor, payload, pickScenario, record, summaryOutputs, targetUrl, type SummaryData } from './lib.ts';

const scenario = pickScenario('constant');
const url = `${targetUrl()}/load?bytes=${scenario.responseBytes}`;
const body = payload(scenario.requestBytes);

export const options = optionsFor(scenario);

export default function (): void {
  const res = http.post(url, body, { timeout: '10s', headers: { 'content-type': 'application/octet-stream' } });
  record(res, 200, scenario.responseBytes, {});
}

export function handleSummary(data: SummaryData): Record<string, string> {
  return summaryOutputs(scenario, data);
}
