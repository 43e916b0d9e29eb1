import { parseArgs } from 'node:util';
import {
  captureRuleSet,
  captureRulesOptions,
  emptyRuleSet,
  installCaptureRules,
  IPTABLES_TOOLS,
  IptablesError,
  IptablesOptionError,
  natTableAvailable,
  natTableOf,
  removeCaptureRules,
  restoreInput,
  EMPTY_NAT_TABLE,
  DEFAULT_CAPTURE_RULES_OPTIONS as D,
  type CaptureRulesInput,
  type IpFamily,
} from '../../proxy/iptables/index.js';
import type { Command } from '../command.js';
import { UsageError } from '../usage-error.js';

const USAGE = `usage: noisemesh init-iptables [options]

Installs the pod's nat rules that redirect the app's TCP connections to the proxy
(idempotent: running it again leaves one copy of each rule). Needs NET_ADMIN.

  --proxy-uid UID                 connections of this UID are not captured (${D.proxyUid})
  --outbound-port PORT            outbound capture port (${D.outboundPort})
  --inbound-port PORT             inbound capture port (${D.inboundPort})
  --mesh-port PORT                mesh port, never captured inbound (${D.meshPort})
  --exclude-outbound-ports LIST   destination ports left alone, e.g. 5432,6379
  --exclude-outbound-cidrs LIST   destination networks left alone, e.g. 10.96.0.0/12,fd00::/8
  --exclude-inbound-ports LIST    local ports left alone (${D.excludeInboundPorts.join(',')}; '' for none)
  --no-inbound                    no inbound capture
  --ipv6 | --no-ipv6              IPv6 rules too, or not (default: when ip6tables works)
  --dry-run                       print the iptables-restore input; changes nothing, needs no root
  --cleanup                       remove every noisemesh chain and the jumps into them
`;

/** Each option's command-line flag, for errors raised by the rule options' own checks. */
const FLAG_OF: Readonly<Record<string, string>> = {
  proxyUid: '--proxy-uid',
  outboundPort: '--outbound-port',
  inboundPort: '--inbound-port',
  meshPort: '--mesh-port',
  excludeOutboundPorts: '--exclude-outbound-ports',
  excludeOutboundCidrs: '--exclude-outbound-cidrs',
  excludeInboundPorts: '--exclude-inbound-ports',
};

const FAMILY_NAME: Readonly<Record<IpFamily, string>> = { 4: 'IPv4', 6: 'IPv6' };

export const initIptables: Command = {
  usage: USAGE,
  async run(args) {
    const { values } = parseArgs({
      args,
      strict: true,
      options: {
        'proxy-uid': { type: 'string' },
        'outbound-port': { type: 'string' },
        'inbound-port': { type: 'string' },
        'mesh-port': { type: 'string' },
        'exclude-outbound-ports': { type: 'string' },
        'exclude-outbound-cidrs': { type: 'string' },
        'exclude-inbound-ports': { type: 'string' },
        'no-inbound': { type: 'boolean' },
        ipv6: { type: 'boolean' },
        'no-ipv6': { type: 'boolean' },
        'dry-run': { type: 'boolean' },
        cleanup: { type: 'boolean' },
      },
    });
    if (values['no-inbound'] === true && values['inbound-port'] !== undefined) {
      throw new UsageError('--inbound-port and --no-inbound contradict each other: drop one');
    }
    if (values.ipv6 === true && values['no-ipv6'] === true) {
      throw new UsageError('--ipv6 and --no-ipv6 contradict each other: drop one');
    }

    const input: CaptureRulesInput = {
      proxyUid: integer('--proxy-uid', values['proxy-uid']),
      outboundPort: integer('--outbound-port', values['outbound-port']),
      inboundPort: values['no-inbound'] === true ? null : integer('--inbound-port', values['inbound-port']),
      meshPort: integer('--mesh-port', values['mesh-port']),
      excludeOutboundPorts: integerList('--exclude-outbound-ports', values['exclude-outbound-ports']),
      excludeOutboundCidrs: list(values['exclude-outbound-cidrs'], '--exclude-outbound-cidrs'),
      excludeInboundPorts: integerList('--exclude-inbound-ports', values['exclude-inbound-ports']),
    };
    let options;
    try {
      options = captureRulesOptions(input);
    } catch (err) {
      if (!(err instanceof IptablesOptionError)) throw err;
      const [, name = err.field, index] = /^(\w+)(?:\[(\d+)\])?$/.exec(err.field) ?? [];
      const where = index === undefined ? '' : ` (item ${Number(index) + 1})`;
      throw new UsageError(`${FLAG_OF[name] ?? err.field}${where}: ${err.problem}`);
    }

    const ipv6: 'on' | 'off' | 'auto' = values.ipv6 === true ? 'on' : values['no-ipv6'] === true ? 'off' : 'auto';
    const cleanup = values.cleanup === true;

    if (values['dry-run'] === true) {
      // Without root nothing can be read: show what install does to a pod without our rules,
      // or what cleanup does to a pod set up with these options.
      for (const family of ipv6 === 'off' ? [4 as const] : [4 as const, 6 as const]) {
        const wanted = captureRuleSet(options, family);
        const text = cleanup ? restoreInput(emptyRuleSet(family), natTableOf(wanted)) : restoreInput(wanted, EMPTY_NAT_TABLE);
        const when = family === 6 && ipv6 === 'auto' ? ', applied when ip6tables works' : '';
        process.stdout.write(`# ${FAMILY_NAME[family]}: ${IPTABLES_TOOLS[family].restore} --noflush${when}\n${text}\n`);
      }
      return 0;
    }

    const families: IpFamily[] = [4];
    if (ipv6 === 'on' || (ipv6 === 'auto' && (await natTableAvailable(IPTABLES_TOOLS[6])))) families.push(6);
    else if (ipv6 === 'auto') process.stderr.write(`IPv6: skipped, ${IPTABLES_TOOLS[6].save} -t nat does not work here\n`);

    try {
      for (const family of families) {
        if (cleanup) {
          const applied = await removeCaptureRules(family);
          const removed = applied.split('\n').filter((l) => l.startsWith('-X ')).length;
          process.stdout.write(`${FAMILY_NAME[family]}: removed ${removed} noisemesh chains and the jumps into them\n`);
        } else {
          await installCaptureRules(options, family);
          const set = captureRuleSet(options, family);
          process.stdout.write(
            `${FAMILY_NAME[family]}: ${set.rules.length} rules in ${set.chains.join(', ')}; ` +
              `jumps: ${set.jumps.map((j) => j.split(' ')[1]).join(', ')}\n`,
          );
        }
      }
    } catch (err) {
      // The tools' own words are the diagnosis: print them, not a stack.
      if (!(err instanceof IptablesError)) throw err;
      process.stderr.write(`noisemesh init-iptables: ${err.message}\n`);
      return 1;
    }
    return 0;
  },
};

/** A comma-separated list; an empty item (`1,,2`, a trailing comma) is a mistake, not nothing. */
function list(value: string | undefined, flag: string): string[] | undefined {
  if (value === undefined) return undefined;
  const items = value.split(',').map((s) => s.trim());
  if (items.length === 1 && items[0] === '') return [];
  const empty = items.indexOf('');
  if (empty >= 0) throw new UsageError(`${flag} (item ${empty + 1}): empty: write the list without empty items, e.g. 80,443`);
  return items;
}

function integer(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d{1,10}$/.test(value.trim())) throw new UsageError(`${flag}: '${value}' is not a whole number`);
  return Number(value.trim());
}

function integerList(flag: string, value: string | undefined): number[] | undefined {
  return list(value, flag)?.map((item, i) => {
    if (!/^\d{1,10}$/.test(item)) throw new UsageError(`${flag} (item ${i + 1}): '${item}' is not a whole number: write ports as 80,443`);
    return Number(item);
  });
}
