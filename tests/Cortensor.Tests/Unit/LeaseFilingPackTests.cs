using System.Text;
using Cortensor.Api.Limits;

namespace Cortensor.Tests.Unit;

/// <summary>The filings of a lease go to Redis as one argument: each event id, charge and record followed by a zero byte.</summary>
public sealed class LeaseFilingPackTests
{
    [Fact]
    public void EachFilingIsItsEventIdChargeAndRecordEachEndedByAZeroByteAndNothingElse()
    {
        var filings = new[]
        {
            new AdmissionLeases.Filing("evt_01a2", 2_800, Encoding.UTF8.GetBytes("{\"model\":\"gpt-oss-20b\",\"text\":\"Grüße 🙂\"}")),
            new AdmissionLeases.Filing("evt_01a3", 0, Encoding.UTF8.GetBytes("{}")),
            new AdmissionLeases.Filing("evt_01a4", long.MaxValue, []),
            new AdmissionLeases.Filing("evt_01a5", -1_234_567_890_123, Encoding.UTF8.GetBytes("{\"n\":1}")),
        };

        var packed = AdmissionLeases.Filing.Pack(filings);

        var expected = new List<byte>();
        foreach (var f in filings)
        {
            expected.AddRange(Encoding.UTF8.GetBytes(f.EventId));
            expected.Add(0);
            expected.AddRange(Encoding.ASCII.GetBytes(f.Charge.ToString(System.Globalization.CultureInfo.InvariantCulture)));
            expected.Add(0);
            expected.AddRange(f.Payload);
            expected.Add(0);
        }
        Assert.Equal(expected.ToArray(), packed);
    }

    [Fact]
    public void NoFilingsPackToNothing() => Assert.Empty(AdmissionLeases.Filing.Pack([]));
}
