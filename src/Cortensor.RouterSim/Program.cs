using Cortensor.RouterSim;

var builder = WebApplication.CreateBuilder(args);

builder.AddServiceDefaults();
builder.AddRouterNode();

var app = builder.Build();

app.MapDefaultEndpoints();
app.MapRouterApi();
app.MapControlApi();

app.Run();

