using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace Cortensor.Tests.Fixtures;

/// <summary>
/// A real server process (Postgres or Redis) started from the same scripts the AppHost uses,
/// on a free port with its own data directory, for integration tests outside the AppHost.
/// It runs in a process group of its own under a watchdog: when the test host dies without
/// cleaning up (a crash, SIGKILL), the watchdog stops the whole group and deletes the data.
/// </summary>
public sealed class LocalServer : IAsyncDisposable
{
    /// <summary>
    /// The watchdog (bash, leader of a new session): starts the script, and when the test host or the
    /// server exits, or it is told to stop, ends the whole process group (TERM, then KILL after 5 s).
    /// </summary>
    private const string Watchdog = """
        script=$1; host=$2; data=$3
        bash "$script" & server=$!
        stop() {
          kill -TERM "$server" 2>/dev/null
          for _ in $(seq 50); do kill -0 "$server" 2>/dev/null || break; sleep 0.1; done
          trap - TERM
          rm -rf -- "$data" "$data-socket"
          kill -KILL 0
        }
        trap stop TERM INT
        while kill -0 "$host" 2>/dev/null && kill -0 "$server" 2>/dev/null; do sleep 1 & wait $!; done
        stop
        """;

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
        var info = new ProcessStartInfo("setsid")
        {
            ArgumentList = { "bash", "-c", Watchdog, "watchdog", Path.Combine(Repository.Root, "scripts", script), Environment.ProcessId.ToString(), data },
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

    /// <summary>Stops the server abruptly, as a crash or an outage would: the whole process group at once.</summary>
    public void Kill()
    {
        // setsid made the watchdog the leader of a new process group: its id is the group's.
        if (!_process.HasExited) _ = KillProcessGroup(_process.Id, Sigkill);
        if (!_process.HasExited) _process.Kill(entireProcessTree: true);
        _process.WaitForExit();
    }

    private const int Sigkill = 9;

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int KillSyscall(int pid, int signal);

    private static int KillProcessGroup(int group, int signal) => KillSyscall(-group, signal);

    public bool HasExited => _process.HasExited;

    public async ValueTask DisposeAsync()
    {
        try
        {
            Kill();
        }
        finally
        {
            await Task.Yield();
            foreach (var directory in new[] { DataDirectory, DataDirectory + "-socket" }) // local-postgres.sh puts its socket next to the data
                try { Directory.Delete(directory, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            _process.Dispose();
        }
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
