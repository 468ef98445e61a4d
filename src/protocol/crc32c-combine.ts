// CRC-32C of a concatenation from the CRCs of its parts: crc(A ‖ B) = crc32cCombine(crc(A),
// crc(B), |B|), without reading A or B again. The WAL uses it for a record body that ends with a
// Kafka batch whose CRC-32C (over its attributes to its end) was just verified: only the
// record's header and the batch's first 21 bytes are read again, not the whole batch.
//
// The method is zlib's crc32_combine (1.2.12 and later), for the Castagnoli polynomial: multiply
// crc(A) by x^(8·|B|) modulo the polynomial, in the bit-reflected domain, then add crc(B). It
// holds for the conditioned CRC (initial value and final XOR 0xFFFFFFFF) that @node-rs/crc32's
// crc32c and Kafka's CRC32C compute. Cost: O(log |B|) products of 32-bit polynomials.

/** The CRC-32C polynomial, bit-reflected. */
const POLY = 0x82f63b78;

/** a·b modulo POLY, both bit-reflected polynomials (x^0 is the top bit). */
function multModP(a: number, b: number): number {
  let m = 0x80000000;
  let p = 0;
  for (;;) {
    if ((a & m) !== 0) {
      p ^= b;
      if ((a & (m - 1)) === 0) break;
    }
    m >>>= 1;
    b = (b & 1) !== 0 ? (b >>> 1) ^ POLY : b >>> 1;
  }
  return p >>> 0;
}

/** X2N[k] = x^(2^k) modulo POLY. */
const X2N: number[] = [0x40000000];
for (let k = 1; k < 32; k++) X2N.push(multModP(X2N[k - 1]!, X2N[k - 1]!));

/** x^(n·2^k) modulo POLY. */
function x2nModP(n: number, k: number): number {
  let p = 0x80000000; // x^0
  while (n > 0) {
    if (n % 2 === 1) p = multModP(X2N[k & 31]!, p);
    n = Math.floor(n / 2);
    k++;
  }
  return p;
}

/** CRC-32C of A ‖ B, from crcA = crc32c(A), crcB = crc32c(B) and lengthB = |B| in bytes. */
export function crc32cCombine(crcA: number, crcB: number, lengthB: number): number {
  if (!(Number.isSafeInteger(lengthB) && lengthB >= 0)) throw new RangeError(`length must be a non-negative integer, got ${lengthB}`);
  return (multModP(x2nModP(lengthB, 3), crcA >>> 0) ^ crcB) >>> 0;
}
