import { randomBytes } from 'node:crypto';
import { crc32c } from '@node-rs/crc32';
import { describe, expect, it } from 'vitest';
import { crc32cCombine } from '../../../src/protocol/crc32c-combine.ts';

describe('crc32cCombine', () => {
  it('gives the CRC-32C of the concatenation, for parts of any length', () => {
    const whole = randomBytes(300_000);
    const cuts = [0, 1, 7, 21, 53, 4096, 65_537, 299_999, 300_000];
    for (const from of [0, 3, 1000]) {
      for (const cut of cuts) {
        if (cut < from) continue;
        const a = whole.subarray(from, cut);
        const b = whole.subarray(cut);
        expect(crc32cCombine(crc32c(a), crc32c(b), b.length), `[${from}, ${cut}) + [${cut}, end)`).toBe(crc32c(whole.subarray(from)));
      }
    }
  });

  it('matches the standard check value when the parts are the digits of "123456789"', () => {
    const digits = Buffer.from('123456789');
    expect(crc32c(digits)).toBe(0xe3069283);
    expect(crc32cCombine(crc32c(digits.subarray(0, 4)), crc32c(digits.subarray(4)), 5)).toBe(0xe3069283);
  });

  it('refuses a length that is not a byte count', () => {
    expect(() => crc32cCombine(0, 0, -1)).toThrow(RangeError);
    expect(() => crc32cCombine(0, 0, 1.5)).toThrow(RangeError);
  });
});
