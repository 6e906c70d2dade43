// A trivial OpenAI-shaped upstream for the peer gateway (Portkey) in bench/run.sh: it answers every
// chat completion from memory with 16 tokens, as JSON or as a server-sent event stream, like the
// RouterSim does for the Portal, so both gateways are measured in front of an upstream that costs nothing.
const http = require('http');
const port = Number(process.argv[2] || 8089);
const words = Array.from({ length: 16 }, (_, i) => `w${i} `);
const answer = JSON.stringify({
  id: 'chatcmpl-bench', object: 'chat.completion', created: 0, model: 'gpt-oss-20b',
  choices: [{ index: 0, message: { role: 'assistant', content: words.join('') }, finish_reason: 'stop' }],
  usage: { prompt_tokens: 12, completion_tokens: 16, total_tokens: 28 },
});
const chunk = (delta, finish) => 'data: ' + JSON.stringify({
  id: 'chatcmpl-bench', object: 'chat.completion.chunk', created: 0, model: 'gpt-oss-20b',
  choices: [{ index: 0, delta, finish_reason: finish }],
}) + '\n\n';
const stream = chunk({ role: 'assistant', content: '' }, null) + words.map(w => chunk({ content: w }, null)).join('')
  + chunk({}, 'stop') + 'data: [DONE]\n\n';
http.createServer((req, res) => {
  const body = [];
  req.on('data', c => body.push(c));
  req.on('end', () => {
    let streamed = false;
    try { streamed = JSON.parse(Buffer.concat(body).toString()).stream === true; } catch { }
    if (streamed) {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      res.end(stream);
    } else {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(answer) });
      res.end(answer);
    }
  });
}).listen(port, '127.0.0.1');
