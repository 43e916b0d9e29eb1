// The API-server test double (fake-apiserver.ts) as a process of its own, for tests whose
// proxy lives in a network namespace the test process cannot reach: run it inside that
// namespace. `node fake-apiserver-main.js OBJECTS.json TOKEN` serves the objects, then prints
// `listening <port>` on 127.0.0.1 and runs until killed. OBJECTS.json: `[{resource, object}]`,
// resource one of clearanceregistries, services, endpointslices.
import { readFileSync } from 'node:fs';
import { CLEARANCE_REGISTRIES, ENDPOINT_SLICES, FakeApiServer, SERVICES, type ResourceId } from './fake-apiserver.js';

const RESOURCES: Readonly<Record<string, ResourceId>> = { clearanceregistries: CLEARANCE_REGISTRIES, services: SERVICES, endpointslices: ENDPOINT_SLICES };

const [file, token] = process.argv.slice(2);
if (file === undefined || token === undefined) throw new Error('usage: fake-apiserver-main.js OBJECTS.json TOKEN');
const server = await new FakeApiServer({ tokens: [token] }).start();
for (const { resource, object } of JSON.parse(readFileSync(file, 'utf8')) as { resource: string; object: Record<string, unknown> }[]) {
  const id = RESOURCES[resource];
  if (id === undefined) throw new Error(`unknown resource ${resource}`);
  server.apply(object, id);
}
console.log(`listening ${server.port}`);
