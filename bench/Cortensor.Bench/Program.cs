using BenchmarkDotNet.Running;
using Cortensor.Bench;

// bench/run.sh drives these modes; each prints a markdown table on stdout.
return args switch
{
    ["load", .. var rest] => await LoadBenchmark.RunAsync(LoadOptions.Parse(rest)),
    ["ledger", .. var rest] => await LedgerBenchmark.RunAsync(rest),
    ["micro", .. var rest] => MicroBenchmarks.Run(rest),
    ["chaos", "drive", .. var rest] => await ChaosDriver.RunAsync(rest),
    ["chaos", "check", .. var rest] => await ChaosCheck.RunAsync(rest),
    _ => Usage(),
};

static int Usage()
{
    Console.Error.WriteLine("usage: Cortensor.Bench load --api URL --router URL --key KEY --router-token TOKEN [--seconds N]");
    Console.Error.WriteLine("       Cortensor.Bench ledger --postgres CONNSTR [--events N]");
    Console.Error.WriteLine("       Cortensor.Bench micro");
    Console.Error.WriteLine("       Cortensor.Bench chaos drive --api URL [--api URL2] --orgs FILE --out FILE [--seconds N] [--concurrency C]");
    Console.Error.WriteLine("       Cortensor.Bench chaos check --api URL [--api URL2] --orgs FILE --records FILE --redis CONFIG --postgres CONNSTR --admin-token T [--spool DIR]...");
    return 2;
}
