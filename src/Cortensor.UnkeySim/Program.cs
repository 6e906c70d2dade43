using Cortensor.UnkeySim;

var app = UnkeySimApp.Create(args);
app.Run();
