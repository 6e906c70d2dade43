using Cortensor.Web.Components;
using Cortensor.Web.Services;
using Microsoft.FluentUI.AspNetCore.Components;

var builder = WebApplication.CreateBuilder(args);

builder.AddServiceDefaults();
builder.AddClientAddresses();
builder.AddPortalApiClient();
builder.AddPortalSessions();
builder.Services.AddFluentUIComponents();
builder.Services.AddRazorComponents().AddInteractiveServerComponents();

var app = builder.Build();

app.UseClientAddresses();
if (!app.Environment.IsDevelopment())
    app.UseExceptionHandler("/error", createScopeForErrors: true);

app.UseSignInBinding();
app.UseAuthentication();
app.UseAuthorization();
app.UseAntiforgery();
app.MapStaticAssets();
app.MapDefaultEndpoints();
app.MapPortalSessions();
app.MapRequestExport();
app.MapRazorComponents<App>().AddInteractiveServerRenderMode();

app.Run();
