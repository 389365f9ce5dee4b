// A Claris ID token command for the simulator's FMID mode (FM_CLARIS_ID_TOKEN_COMMAND): asks the simulator's admin
// port for a fresh FMID token and prints it, as an operator's command would ask Claris' sign-in. Arguments: the admin
// URL, and optionally a file each token is appended to, so a test can count the tokens and look for them in logs.
import { appendFileSync } from 'node:fs';

const [adminUrl, issuedFile] = process.argv.slice(2);
if (adminUrl === undefined) {
  process.stderr.write('usage: node scripts/sim-fmid-token.mjs <simulator admin URL> [file to append each token to]\n');
  process.exit(2);
}
const res = await fetch(`${adminUrl}/fmid/tokens`, { method: 'POST' });
if (!res.ok) {
  process.stderr.write(`the simulator answered ${res.status}\n`);
  process.exit(1);
}
const { token } = await res.json();
if (issuedFile !== undefined) appendFileSync(issuedFile, `${token}\n`);
process.stdout.write(`${token}\n`);
