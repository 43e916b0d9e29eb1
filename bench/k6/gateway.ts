/**
 * Secret fetches through the mesh from the secrets gateway (issue 11's API): GET
 * /v1/secrets/{path}; a path of allowedPaths must answer 200, one of deniedPaths 403, and
 * anything else is an error (scenarios gateway-allowed, gateway-mixed). The mix is exact
 * and deterministic (contract.ts isDenied), the same the runner asks for.
 *   k6 run -e TARGET_URL=http://gateway:8200 -e SCENARIO=gateway-mixed gateway.ts
 */
import http from 'k6/http';
import exec from 'k6/execution';
import { optionsFor, pickScenario, record, summaryOutputs, targetUrl, type SummaryData } from './lib.ts';
import { isDenied } from './contract.ts';

const scenario = pickScenario('gateway');
const base = targetUrl();

export const options = optionsFor(scenario);

export default function (): void {
  const i = exec.scenario.iterationInTest;
  const denied = isDenied(i, scenario.deniedShare);
  const paths = denied ? scenario.deniedPaths : scenario.allowedPaths;
  const path = paths[i % paths.length]!;
  const tags = { decision: denied ? 'denied' : 'allowed' };
  const res = http.get(`${base}/v1/secrets/${path}`, { timeout: '10s', tags, responseCallback: http.expectedStatuses(200, 403) });
  record(res, denied ? 403 : 200, null, tags);
}

export function handleSummary(data: SummaryData): Record<string, string> {
  return summaryOutputs(scenario, data);
}
