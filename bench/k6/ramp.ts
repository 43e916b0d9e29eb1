/**
 * The knee: the constant-rate request on a staircase of arrival rates (scenario knee). Each
 * request is tagged with the step whose hold window it started in (none while climbing);
 * handleSummary reports every step and the highest rate before the first step that fails.
 *   k6 run -e TARGET_URL=http://B:8080 -e SCENARIO=knee ramp.ts
 */
import http from 'k6/http';
import exec from 'k6/execution';
import { optionsFor, payload, pickScenario, record, stepAt, summaryOutputs, targetUrl, type SummaryData } from './lib.ts';

const scenario = pickScenario('ramp');
const url = `${targetUrl()}/load?bytes=${scenario.responseBytes}`;
const body = payload(scenario.requestBytes);

export const options = optionsFor(scenario);

export default function (): void {
  const step = stepAt(scenario, Date.now() - exec.scenario.startTime);
  const tags: Record<string, string> = step >= 0 ? { step: String(step) } : {};
  const res = http.post(url, body, { timeout: '10s', headers: { 'content-type': 'application/octet-stream' }, tags });
  record(res, 200, scenario.responseBytes, tags);
}

export function handleSummary(data: SummaryData): Record<string, string> {
  return summaryOutputs(scenario, data);
}
