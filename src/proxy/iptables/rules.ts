import type { IpFamily } from './cidr.js';
import type { CaptureRulesOptions } from './options.js';

/**
 * Our chains in the nat table. Built-in chains only hold one jump into them, so install and
 * cleanup can own everything named NOISEMESH_* without touching anyone else's rules.
 */
export const CHAINS = {
  /** Entered from OUTPUT for every locally originated TCP connection: decides what to capture. */
  output: 'NOISEMESH_OUTPUT',
  /** Redirects to the outbound capture port. */
  redirect: 'NOISEMESH_REDIRECT',
  /** Entered from PREROUTING for every arriving TCP connection: decides what to capture. */
  inbound: 'NOISEMESH_INBOUND',
  /** Redirects to the inbound capture port. */
  inRedirect: 'NOISEMESH_IN_REDIRECT',
} as const;

export const CHAIN_PREFIX = 'NOISEMESH_';

/**
 * One family's rules, as lines in iptables-save's own spelling (`-p tcp -m tcp --dport`), so
 * what we render is, line for line, what `iptables-save` prints back once installed.
 */
export interface CaptureRuleSet {
  readonly family: IpFamily;
  /** Our chains, in the order they are declared. */
  readonly chains: readonly string[];
  /** `-A NOISEMESH_...` lines: the whole content of our chains. */
  readonly rules: readonly string[];
  /** `-A OUTPUT ...`/`-A PREROUTING ...` lines: the jumps into our chains, each to exist exactly once. */
  readonly jumps: readonly string[];
}

/** The rule set of one family for these options. Pure: the same options give the same lines. */
export function captureRuleSet(options: CaptureRulesOptions, family: IpFamily): CaptureRuleSet {
  const chains: string[] = [CHAINS.output, CHAINS.redirect];
  const rules: string[] = [];
  const jumps: string[] = [`-A OUTPUT -p tcp -j ${CHAINS.output}`];
  const returnFromOutput = (match: string) => rules.push(`-A ${CHAINS.output} ${match} -j RETURN`);

  rules.push(`-A ${CHAINS.redirect} -p tcp -j REDIRECT --to-ports ${options.outboundPort}`);
  for (const port of options.excludeOutboundPorts) returnFromOutput(`-p tcp -m tcp --dport ${port}`);
  // The proxy's own connections (to peers' mesh ports, plaintext passthrough, the inbound side's
  // connections to 127.0.0.1:<target>) must leave as they are, or the proxy captures itself.
  returnFromOutput(`-m owner --uid-owner ${options.proxyUid}`);
  // Loopback. Everything routed out of `lo` is left alone: 127.0.0.0/8 and ::1 (sidecar-aware
  // apps, container-to-container calls), and the app calling its own pod IP, which the kernel
  // also routes over `lo`. istio-iptables makes the same split (`-o lo -m owner ! --uid-owner
  // 1337 -j RETURN`, "do not redirect app calls back to itself via Envoy when using the
  // endpoint address"): captured, such a call would go app -> outbound capture -> a proxy that
  // finds its own pod as the destination and dials itself, a detour through both sides of the
  // proxy for a connection that never leaves the pod.
  // Istio adds `-o lo ! -d 127.0.0.1/32 -m owner --uid-owner 1337 -j ISTIO_IN_REDIRECT`, sending
  // the proxy's own calls to its pod IP into inbound capture, because Envoy reaches its own pod
  // on the app's port. Ours reaches a meshed self on the mesh port, which must not be
  // redirected, and Istio then needs a second exemption (inbound passthrough bound to
  // 127.0.0.6) to keep that rule from looping. We leave it out: the UID rule above returns
  // every proxy connection, so nothing can loop. (PREROUTING cannot catch looped-back traffic
  // instead: nat rules see a connection's first packet once, in OUTPUT for local traffic.)
  returnFromOutput('-o lo');
  for (const cidr of options.excludeOutboundCidrs) {
    if (cidr.family === family) returnFromOutput(`-d ${cidr.text}`);
  }
  rules.push(`-A ${CHAINS.output} -j ${CHAINS.redirect}`);

  if (options.inboundPort !== null) {
    chains.push(CHAINS.inbound, CHAINS.inRedirect);
    rules.push(`-A ${CHAINS.inRedirect} -p tcp -j REDIRECT --to-ports ${options.inboundPort}`);
    // Meshed traffic is already the proxy's: it arrives on the mesh port, which the responder
    // listens on itself. Excluded ports (probes, admin) reach their listeners as they came.
    for (const port of [options.meshPort, ...options.excludeInboundPorts]) {
      rules.push(`-A ${CHAINS.inbound} -p tcp -m tcp --dport ${port} -j RETURN`);
    }
    rules.push(`-A ${CHAINS.inbound} -p tcp -j ${CHAINS.inRedirect}`);
    jumps.push(`-A PREROUTING -p tcp -j ${CHAINS.inbound}`);
  }
  return { family, chains, rules, jumps };
}

/** No chains, no jumps: installing it is removing ours. */
export function emptyRuleSet(family: IpFamily): CaptureRuleSet {
  return { family, chains: [], rules: [], jumps: [] };
}
