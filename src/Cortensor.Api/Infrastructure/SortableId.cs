using System.Security.Cryptography;

namespace Cortensor.Api.Infrastructure;

/// <summary>
/// Identifiers that sort by the millisecond they were made (UUID version 7, RFC 9562) for what every request creates:
/// its request id and its usage event id.
/// </summary>
/// <remarks>
/// <see cref="Guid.CreateVersion7()"/> and <see cref="Guid.NewGuid"/> read their random bits from <c>/dev/urandom</c>
/// with one system call per identifier on the portable Linux runtime, and every system call is dear on a paravirtualised
/// machine (bench/limits.md, ninth round). Asking <see cref="RandomNumberGenerator"/> (OpenSSL) for ten bytes at a time
/// avoids the call but costs more still: about 2 µs an identifier against 1.5 µs, most of it OpenSSL's fixed work per
/// call (its fork check is a <c>getpid</c> system call, its provider lookups compare strings). So each thread draws the
/// random bits from the same generator a kilobyte at a time and hands out ten bytes per identifier: about 0.03 µs an
/// identifier, no bit handed out twice, and the bits as unpredictable as the generator's.
/// </remarks>
public static class SortableId
{
    private const int RandomBytesPerId = 10;
    private const int BufferedIds = 102;

    [ThreadStatic] private static byte[]? t_random;
    [ThreadStatic] private static int t_used;

    public static Guid NewGuid(TimeProvider? clock = null)
    {
        Span<byte> bytes = stackalloc byte[16];
        NextRandomBits(bytes[6..]);
        var unixMs = (clock ?? TimeProvider.System).GetUtcNow().ToUnixTimeMilliseconds();
        // 48 bits of Unix milliseconds, big-endian, then the version and variant bits as RFC 9562 lays them out.
        for (var i = 5; i >= 0; i--, unixMs >>= 8)
            bytes[i] = (byte)unixMs;
        bytes[6] = (byte)(0x70 | (bytes[6] & 0x0F));
        bytes[8] = (byte)(0x80 | (bytes[8] & 0x3F));
        return new Guid(bytes, bigEndian: true);
    }

    private static void NextRandomBits(Span<byte> destination)
    {
        var random = t_random;
        if (random is null || t_used + RandomBytesPerId > random.Length)
        {
            random ??= new byte[RandomBytesPerId * BufferedIds];
            RandomNumberGenerator.Fill(random);
            // Kept only once filled: if the generator fails, this id fails and the next one asks it again, rather than
            // a buffer of zeros handing out the same bits to every id of the millisecond.
            t_random = random;
            t_used = 0;
        }
        random.AsSpan(t_used, RandomBytesPerId).CopyTo(destination);
        t_used += RandomBytesPerId;
    }

    /// <summary>The prefix and the identifier's 32 hex digits, made as one string.</summary>
    public static string New(string prefix) =>
        string.Create(prefix.Length + 32, prefix, static (chars, prefix) =>
        {
            prefix.CopyTo(chars);
            NewGuid().TryFormat(chars[prefix.Length..], out _, "N");
        });
}
