using System.Diagnostics;
using System.Net;
using System.Text.RegularExpressions;
using Cortensor.Tests.Fixtures;

namespace Cortensor.Tests.EndToEnd;

/// <summary>
/// The quickstart's snippets run as pasted: read from the page as the Web renders it, run unchanged (curl through bash,
/// Node in a fresh `npm init -y` project with the openai package, .NET as a file-based app) against the running stack,
/// with the key in CORTENSOR_API_KEY as the page's first step puts it there.
/// </summary>
[Collection(PortalAppCollection.Name), Trait("Category", PortalAppCollection.Category)]
public class QuickstartTests(PortalAppFixture portal) : IDisposable
{
    private readonly List<string> _directories = [];

    public void Dispose()
    {
        foreach (var directory in _directories)
            try { Directory.Delete(directory, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    private async Task<IReadOnlyDictionary<string, string>> SnippetsAsync()
    {
        using var web = portal.CreateClient(LaunchTopology.Web);
        var html = await web.GetStringAsync("/quickstart");
        return Regex.Matches(html, "<code id=\"snippet-([a-z-]+)\">(.*?)</code>", RegexOptions.Singleline)
            .ToDictionary(m => m.Groups[1].Value, m => WebUtility.HtmlDecode(Regex.Replace(m.Groups[2].Value, "<!--.*?-->", "")));
    }

    private async Task<string> KeyAsync() => (await portal.CreateCustomerAsync(plan: "free", credits: 0)).Key;

    private static async Task<string> RunAsync(string directory, string key, string file, params string[] args)
    {
        var info = new ProcessStartInfo(file) { WorkingDirectory = directory, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in args) info.ArgumentList.Add(arg);
        info.Environment["CORTENSOR_API_KEY"] = key;
        info.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        info.Environment["DOTNET_NOLOGO"] = "1";
        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var deadline = new CancellationTokenSource(TimeSpan.FromMinutes(4));
        try { await process.WaitForExitAsync(deadline.Token); }
        catch (OperationCanceledException) { process.Kill(entireProcessTree: true); throw new TimeoutException($"{file} {string.Join(' ', args)} did not finish"); }
        var output = await stdout;
        Assert.True(process.ExitCode == 0, $"{file} {string.Join(' ', args)} exited {process.ExitCode}: {output}\n{await stderr}");
        return output;
    }

    private string TempDirectory()
    {
        // Outside the repository: its Directory.Build.props and global.json must not shape a customer's project.
        var path = Path.Combine(Path.GetTempPath(), "cortensor-quickstart-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(path);
        _directories.Add(path);
        return path;
    }

    [Fact]
    public async Task ThePageShowsTheKeyAsAnEnvironmentVariableAndEveryLanguagePlainAndStreaming()
    {
        var snippets = await SnippetsAsync();
        Assert.StartsWith("export CORTENSOR_API_KEY=", snippets["export"]);
        foreach (var language in new[] { "curl", "python", "node", "dotnet" })
        {
            Assert.Contains($"{language}-plain", snippets.Keys);
            Assert.Contains("stream", snippets[$"{language}-stream"], StringComparison.OrdinalIgnoreCase);
            Assert.Contains("CORTENSOR_API_KEY", snippets[$"{language}-plain"]);
        }
    }

    [Fact]
    public async Task TheCurlSnippetsRunAsPasted()
    {
        var snippets = await SnippetsAsync();
        var key = await KeyAsync();
        var directory = TempDirectory();
        var plain = await RunAsync(directory, key, "bash", "-c", snippets["curl-plain"]);
        Assert.Contains("\"choices\"", plain);
        var stream = await RunAsync(directory, key, "bash", "-c", snippets["curl-stream"]);
        Assert.Contains("data: ", stream);
        Assert.Contains("data: [DONE]", stream);
    }

    [SkippableFact]
    public async Task TheNodeSnippetsRunAsIndexJsInADefaultNpmProject()
    {
        Skip.If(FindOnPath("npm") is null || FindOnPath("node") is null, "npm or node is not installed here: scripts/setup.sh installs them.");
        var snippets = await SnippetsAsync();
        var key = await KeyAsync();
        var directory = TempDirectory();
        await RunAsync(directory, key, "npm", "init", "-y");
        await RunAsync(directory, key, "npm", "install", "openai", "--no-audit", "--no-fund", "--loglevel=error");
        foreach (var snippet in new[] { "node-plain", "node-stream" })
        {
            await File.WriteAllTextAsync(Path.Combine(directory, "index.js"), snippets[snippet]);
            var output = await RunAsync(directory, key, "node", "index.js");
            Assert.False(string.IsNullOrWhiteSpace(output), $"{snippet} printed nothing");
        }
    }

    [Fact]
    public async Task TheDotNetSnippetsRunAsFileBasedApps()
    {
        var snippets = await SnippetsAsync();
        var key = await KeyAsync();
        foreach (var snippet in new[] { "dotnet-plain", "dotnet-stream" })
        {
            var directory = TempDirectory();
            await File.WriteAllTextAsync(Path.Combine(directory, "app.cs"), snippets[snippet]);
            var output = await RunAsync(directory, key, "dotnet", "run", "app.cs");
            Assert.False(string.IsNullOrWhiteSpace(output), $"{snippet} printed nothing");
        }
    }

    private static string? FindOnPath(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Select(d => Path.Combine(d, name)).FirstOrDefault(File.Exists);
}
