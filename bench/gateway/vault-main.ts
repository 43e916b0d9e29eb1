// The Vault test double (test/helpers/fake-vault.ts; it is not Vault) as a process of its
// own, for the gateway bench's cache-miss case: the backend reads a miss costs are served
// outside the gateway's process and the load generator's. `node vault-main.js N` stores
// `payments/db` and `payments/s0` .. `payments/s{N-1}`, then prints `<url> <token>` and
// runs until killed.
import { FakeVault } from '../../test/helpers/fake-vault.js';

const count = Number(process.argv[2] ?? '0');
const vault = await new FakeVault().start();
const token = vault.createToken({ policies: ['payments/'], ttlSeconds: 0 });
vault.put('payments/db', { username: 'app', password: 'bench-password' });
for (let i = 0; i < count; i++) vault.put(`payments/s${i}`, { username: 'app', password: 'bench-password' });
// The double records every request; the bench needs none of them: bounded memory.
setInterval(() => vault.requests.splice(0), 1000);
console.log(`${vault.url} ${token}`);
