using Cortensor.Web.Services;
using Microsoft.AspNetCore.Components;

namespace Cortensor.Web.Components;

/// <summary>
/// What every signed-in page does around a remote call: show that it is loading, turn a failure into a
/// message that says what to do, and send the user to sign in when their session has ended.
/// </summary>
public abstract class PortalPage : ComponentBase
{
    [Inject] protected PortalSession Session { get; set; } = null!;
    [Inject] protected NavigationManager Navigation { get; set; } = null!;

    protected bool Loading { get; private set; }
    protected string? Error { get; set; }

    protected async Task RunAsync(Func<Task> work)
    {
        Loading = true;
        Error = null;
        try
        {
            await work();
        }
        catch (SessionEndedException)
        {
            Navigation.NavigateTo("/signin?expired=1", forceLoad: true);
        }
        catch (Exception ex) when (ex is HttpRequestException or Refit.ApiException or TaskCanceledException)
        {
            Error = PortalSession.Describe(ex);
        }
        finally
        {
            Loading = false;
        }
    }
}
