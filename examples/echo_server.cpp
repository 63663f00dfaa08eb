// Beyond the seeds' code (they name streams and sockets, with no example): an echo server, a TCP
// server that sends every line back to whoever sent it.
//   async def handle_client(reader, writer):
//       while data := await reader.readline():
//           writer.write(data); await writer.drain()
//       writer.close(); await writer.wait_closed()
//   server = await asyncio.start_server(handle_client, '127.0.0.1', 8888)
//   async with server: await server.serve_forever()
//
// Usage: example_echo_server [port] [--self-test]
//   Serves on 127.0.0.1:<port> (default 8888; 0 picks a free port) until Ctrl-C. With
//   --self-test (how the test suite runs it, see echo_server.args) it also starts three clients
//   of its own, checks that every line comes back, then closes the server and exits.
#include <corio/corio.hpp>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

using namespace std::chrono_literals;

namespace {

int connections = 0;

corio::Coro<> handle_client(corio::StreamReader reader, corio::StreamWriter writer) {
    auto peer = writer.get_extra_info("peername");
    std::string who = peer ? peer->to_string() : "?";
    ++connections;
    std::printf("server: %s connected\n", who.c_str());
    int lines = 0;
    for (;;) {
        std::string line = co_await reader.readline();
        if (line.empty()) break;  // EOF: the client is done
        ++lines;
        writer.write(line);
        co_await writer.drain();
    }
    std::printf("server: %s done after %d line(s)\n", who.c_str(), lines);
    writer.close();
    co_await writer.wait_closed();
}

// One self-test client: sends a few lines, checks each echo, half-closes, expects EOF.
corio::Coro<bool> client(std::uint16_t port, int id) {
    corio::Coro<corio::StreamPair> connecting = corio::open_connection("127.0.0.1", port);
    corio::StreamPair conn = co_await std::move(connecting);
    auto& [reader, writer] = conn;
    bool ok = true;
    for (int i = 0; i < 3; ++i) {
        std::string line = "client " + std::to_string(id) + " line " + std::to_string(i) + "\n";
        writer.write(line);
        co_await writer.drain();
        corio::Coro<std::string> reading = corio::wait_for(reader.readline(), 5s);
        std::string echo = co_await std::move(reading);
        ok = ok && echo == line;
    }
    writer.write_eof();
    std::string rest = co_await reader.read(-1);
    ok = ok && rest.empty();
    writer.close();
    co_await writer.wait_closed();
    std::printf("client %d: %s\n", id, ok ? "every line came back" : "MISMATCH");
    co_return ok;
}

corio::Coro<int> main_coro(std::uint16_t port, bool self_test) {
    corio::Coro<corio::Server> starting = corio::start_server(handle_client, "127.0.0.1", port);
    corio::Server server = co_await std::move(starting);
    std::printf("Serving on %s\n", server.sockets()[0].getsockname().to_string().c_str());
    std::fflush(stdout);
    if (!self_test) {
        co_await server.serve_forever();  // until Ctrl-C
        co_return 0;
    }
    std::uint16_t actual = server.sockets()[0].getsockname().port();
    corio::Coro<> forever = server.serve_forever();
    corio::Task<> serving = corio::create_task(std::move(forever));
    std::vector<corio::Coro<bool>> clients;
    for (int id = 1; id <= 3; ++id) clients.push_back(client(actual, id));
    auto all = corio::gather(std::move(clients));
    std::vector<bool> results = co_await std::move(all);
    server.close();
    co_await serving;  // serve_forever returns once the server is closed
    co_await server.wait_closed();
    bool ok = results == std::vector<bool>{true, true, true} && connections == 3;
    std::printf("self-test: %d connection(s), %s\n", connections, ok ? "OK" : "FAILED");
    co_return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
    std::uint16_t port = 8888;
    bool self_test = false;
    for (int i = 1; i < argc; ++i) {
        std::string arg = argv[i];
        if (arg == "--self-test")
            self_test = true;
        else
            port = static_cast<std::uint16_t>(std::atoi(argv[i]));
    }
    try {
        return corio::run(main_coro(port, self_test));
    } catch (const corio::KeyboardInterrupt&) {
        std::printf("\nserver stopped\n");
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "echo_server: %s\n", e.what());
        return 1;
    }
}
