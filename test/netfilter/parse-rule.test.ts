/** parse-rule: rule specs as iptables-save prints them and as moat writes them. */
import { describe, expect, test } from '@jest/globals';
import { parseRuleSpec, RuleParseError, tokenizeSpec } from '../../src/netfilter/parse-rule.js';

describe('tokenizeSpec', () => {
  test('splits on spaces and keeps quoted text whole, with its escapes', () => {
    expect(tokenizeSpec('-m comment --comment "a b \\"c\\"" -j ACCEPT').map((t) => t.text)).toEqual(
      ['-m', 'comment', '--comment', 'a b "c"', '-j', 'ACCEPT'],
    );
  });

  test('an unterminated quote is an error', () => {
    expect(() => tokenizeSpec('--comment "open')).toThrow(RuleParseError);
  });
});

describe('parseRuleSpec', () => {
  test('basic matches with negations, a module, and a jump', () => {
    const rule = parseRuleSpec(
      '-d 172.17.0.2/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport 2368 -j ACCEPT',
    );
    expect(rule.basic).toEqual([
      { name: '-d', negated: false, values: ['172.17.0.2/32'] },
      { name: '-i', negated: true, values: ['docker0'] },
      { name: '-o', negated: false, values: ['docker0'] },
      { name: '-p', negated: false, values: ['tcp'] },
    ]);
    expect(rule.matches).toEqual([
      {
        module: 'tcp',
        implicit: false,
        options: [{ name: '--dport', negated: false, values: ['2368'] }],
      },
    ]);
    expect(rule.target).toEqual({ kind: 'jump', name: 'ACCEPT', options: [] });
  });

  test('goto, and target options', () => {
    expect(parseRuleSpec('-g MOAT-SRC-1').target).toEqual({
      kind: 'goto',
      name: 'MOAT-SRC-1',
      options: [],
    });
    expect(parseRuleSpec('-p tcp -j DNAT --to-destination [fd00::2]:443').target).toEqual({
      kind: 'jump',
      name: 'DNAT',
      options: [{ name: '--to-destination', negated: false, values: ['[fd00::2]:443'] }],
    });
  });

  test("moat's own form: the comment first, basic options after a module, an implicit module", () => {
    const rule = parseRuleSpec(
      '-m comment --comment "moat:abc" -s 10.1.2.3 -p tcp --dport 80 -j RETURN',
    );
    expect(rule.basic.map((o) => o.name)).toEqual(['-s', '-p']);
    expect(rule.matches).toEqual([
      {
        module: 'comment',
        implicit: false,
        options: [{ name: '--comment', negated: false, values: ['moat:abc'] }],
      },
      {
        module: 'tcp',
        implicit: true,
        options: [{ name: '--dport', negated: false, values: ['80'] }],
      },
    ]);
  });

  test('an unquoted comment that looks like an option is still the comment', () => {
    const rule = parseRuleSpec('-m comment --comment -j -j DROP');
    expect(rule.matches[0]?.options[0]?.values).toEqual(['-j']);
    expect(rule.target?.name).toBe('DROP');
  });

  test('options with several values, negated module options', () => {
    const rule = parseRuleSpec(
      '-m set ! --match-set office src -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT',
    );
    expect(rule.matches).toEqual([
      {
        module: 'set',
        implicit: false,
        options: [{ name: '--match-set', negated: true, values: ['office', 'src'] }],
      },
      {
        module: 'conntrack',
        implicit: false,
        options: [{ name: '--ctstate', negated: false, values: ['RELATED,ESTABLISHED'] }],
      },
    ]);
  });

  test('a rule without a target', () => {
    expect(parseRuleSpec('-m comment --comment "moat-digest:1"').target).toBeUndefined();
  });

  test.each(['--dport 80', '-j', '! ! -s 1.2.3.4', '-s', '-j A -j B', '-s 1.2.3.4 !'])(
    '%s is refused',
    (spec) => {
      expect(() => parseRuleSpec(spec)).toThrow(RuleParseError);
    },
  );
});
