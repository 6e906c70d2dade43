using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace Cortensor.Tests.Fixtures;

/// <summary>
/// A real server process (Postgres or Redis) started from the same scripts the AppHost uses,
/// on a free port with its own data directory, for integration tests outside the AppHost.
/// </summary>
public sealed class LocalServer : IAsyncDisposable
{
    private readonly Process _process;
    public int Port { get; }
    public string DataDirectory { get; }

    private LocalServer(Process process, int port, string dataDirectory)
    {
        _process = process;
        Port = port;
        DataDirectory = dataDirectory;
    }

    public static LocalServer Start(string script, Func<int, string, IDictionary<string, string>> environment)
    {
        var port = FreePort();
        var data = Path.Combine(Path.GetTempPath(), "cortensor-tests", $"{Path.GetFileNameWithoutExtension(script)}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(Path.GetDirectoryName(data)!);
        var info = new ProcessStartInfo("bash", Path.Combine(Repository.Root, "scripts", script))
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var (key, value) in environment(port, data)) info.Environment[key] = value;
        var process = Process.Start(info) ?? throw new InvalidOperationException($"could not start {script}");
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) Console.Error.WriteLine($"[{script}] {e.Data}"); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return new LocalServer(process, port, data);
    }

    /// <summary>Stops the server abruptly, as a crash or an outage would.</summary>
    public void Kill()
    {
        if (!_process.HasExited) _process.Kill(entireProcessTree: true);
        _process.WaitForExit();
    }

    public bool HasExited => _process.HasExited;

    public async ValueTask DisposeAsync()
    {
        Kill();
        await Task.Yield();
        try { Directory.Delete(DataDirectory, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}

public static class Repository
{
    public static string Root { get; } = Find();

    private static string Find()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Cortensor.sln"))) return dir.FullName;
        throw new DirectoryNotFoundException("Cortensor.sln not found above the test binaries");
    }
}
