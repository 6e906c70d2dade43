using System.Diagnostics;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Cortensor.Tests.Fixtures;

namespace Cortensor.Tests.Deployment;

/// <summary>docs/aspire-manifest.json is what the AppHost publishes today (scripts/publish-manifest.sh refreshes it).</summary>
public sealed class ManifestTests
{
    [Fact]
    public async Task TheCommittedManifestIsWhatTheAppHostPublishes()
    {
        var fresh = Path.Combine(Path.GetTempPath(), $"cortensor-manifest-{Guid.NewGuid():N}.json");
        try
        {
            var info = new ProcessStartInfo("bash", [Path.Combine(Repository.Root, "scripts", "publish-manifest.sh"), fresh])
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            };
            // The test run already built the AppHost; rebuilding it here would race the test host's own files.
            info.Environment["NO_BUILD"] = "1";
            using var process = Process.Start(info)!;
            var errors = process.StandardError.ReadToEndAsync();
            await process.StandardOutput.ReadToEndAsync();
            using var deadline = new CancellationTokenSource(TimeSpan.FromMinutes(3));
            await process.WaitForExitAsync(deadline.Token);
            Assert.True(process.ExitCode == 0, await errors);

            var docs = Path.Combine(Repository.Root, "docs");
            var published = WithoutCheckoutHash(RelativeTo(JsonNode.Parse(await File.ReadAllTextAsync(fresh))!, Path.GetDirectoryName(fresh)!, docs));
            var committed = WithoutCheckoutHash(JsonNode.Parse(await File.ReadAllTextAsync(Path.Combine(docs, "aspire-manifest.json")))!);
            Assert.True(JsonNode.DeepEquals(published, committed),
                "docs/aspire-manifest.json differs from what the AppHost publishes: run scripts/publish-manifest.sh and commit it.\n"
                + Difference(committed, published));
        }
        finally
        {
            File.Delete(fresh);
        }
    }

    /// <summary>Project paths in a manifest are relative to the file: re-anchor them as if it were written to <paramref name="to"/>.</summary>
    private static JsonNode RelativeTo(JsonNode manifest, string from, string to)
    {
        foreach (var (_, resource) in manifest["resources"]!.AsObject())
            if (resource?["path"] is JsonValue path)
                resource["path"] = Path.GetRelativePath(to, Path.GetFullPath(Path.Combine(from, path.GetValue<string>())));
        return manifest;
    }

    /// <summary>Aspire names default volumes after a hash of the AppHost's path, which differs per checkout.</summary>
    private static JsonNode WithoutCheckoutHash(JsonNode manifest)
    {
        foreach (var (_, resource) in manifest["resources"]!.AsObject())
            foreach (var volume in resource?["volumes"]?.AsArray() ?? [])
                volume!["name"] = Regex.Replace(volume["name"]!.GetValue<string>(), "-[0-9a-f]{10}-", "-{apphost-hash}-");
        return manifest;
    }

    /// <summary>The resources that were added, removed or changed, so the failure says what moved.</summary>
    private static string Difference(JsonNode committed, JsonNode published)
    {
        var before = committed["resources"]!.AsObject();
        var after = published["resources"]!.AsObject();
        var lines = new List<string>();
        foreach (var (name, node) in after)
            if (!before.ContainsKey(name)) lines.Add($"+ {name}");
            else if (!JsonNode.DeepEquals(node, before[name])) lines.Add($"~ {name}: {node!.ToJsonString()}");
        foreach (var (name, _) in before)
            if (!after.ContainsKey(name)) lines.Add($"- {name}");
        return string.Join('\n', lines);
    }
}
