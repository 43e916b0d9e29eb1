/**
 * Connection churn: a new TCP connection per request (noConnectionReuse), hence a new Noise
 * handshake per request through the mesh (scenario churn). With METRICS_URL set to a
 * noisemesh admin /metrics, the accepted handshakes during the run are counted.
 *   k6 run -e TARGET_URL=http://B:8080 -e METRICS_URL=http://127.0.0.1:15020/metrics churn.ts
 */
import http from 'k6/http';
import { acceptedHandshakes, handshakeCount, optionsFor, payload, pickScenario, record, summaryOutputs, targetUrl, type SummaryData } from './lib.ts';

const scenario = pickScenario('churn');
const url = `${targetUrl()}/load?bytes=${scenario.responseBytes}`;
const body = payload(scenario.requestBytes);

export const options = optionsFor(scenario);

interface SetupData {
  readonly handshakesBefore: number | null;
}

export function setup(): SetupData {
  return { handshakesBefore: acceptedHandshakes(__ENV.METRICS_URL) };
}

export default function (): void {
  const res = http.post(url, body, { timeout: '10s', headers: { 'content-type': 'application/octet-stream', connection: 'close' } });
  record(res, 200, scenario.responseBytes, {});
}

export function teardown(data: SetupData): void {
  const after = acceptedHandshakes(__ENV.METRICS_URL);
  if (data.handshakesBefore !== null && after !== null) handshakeCount.add(after - data.handshakesBefore);
}

export function handleSummary(data: SummaryData): Record<string, string> {
  return summaryOutputs(scenario, data);
}
