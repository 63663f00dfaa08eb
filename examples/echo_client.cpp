// Beyond the seeds' code (they name streams and sockets, with no example): an echo client,
// connect, send a message, print the answer, close.
//   reader, writer = await asyncio.open_connection('127.0.0.1', 8888)
//   writer.write(message.encode()); await writer.drain()
//   data = await reader.read(100)
//   print(f'Received: {data.decode()!r}')
//   writer.close(); await writer.wait_closed()
//
// Usage: example_echo_client [port [message]]
//   Talks to an echo server on 127.0.0.1:<port> (example_echo_server, say). Without a port it
//   first starts a small echo server of its own on a free port, so that it runs standalone.
#include <corio/corio.hpp>

#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>

using namespace std::chrono_literals;

namespace {

corio::Coro<> echo(corio::StreamReader reader, corio::StreamWriter writer) {
    for (;;) {
        std::string data = co_await reader.read(100);
        if (data.empty()) break;
        writer.write(data);
        co_await writer.drain();
    }
}

corio::Coro<std::string> tcp_echo_client(std::uint16_t port, std::string message) {
    corio::Coro<corio::StreamPair> connecting = corio::open_connection("127.0.0.1", port);
    corio::StreamPair conn = co_await std::move(connecting);
    auto& [reader, writer] = conn;
    std::printf("Send: '%s'\n", message.c_str());
    writer.write(message);
    co_await writer.drain();
    // A short message on loopback arrives in one piece; a bounded read still gathers it all.
    std::string data;
    while (data.size() < message.size()) {
        corio::Coro<std::string> reading = corio::wait_for(reader.read(100), 5s);
        std::string piece = co_await std::move(reading);
        if (piece.empty()) break;
        data += piece;
    }
    std::printf("Received: '%s'\n", data.c_str());
    std::printf("Close the connection\n");
    writer.close();
    co_await writer.wait_closed();
    co_return data;
}

corio::Coro<int> main_coro(std::optional<std::uint16_t> port, std::string message) {
    std::optional<corio::Server> own;
    if (!port) {
        corio::Coro<corio::Server> starting = corio::start_server(echo, "127.0.0.1", 0);
        own = co_await std::move(starting);
        port = own->sockets()[0].getsockname().port();
        std::printf("(started an echo server of our own on port %u)\n", unsigned(*port));
    }
    corio::Coro<std::string> talking = tcp_echo_client(*port, message);
    std::string reply = co_await std::move(talking);
    if (own) co_await own->aclose();
    bool ok = reply == message;
    std::printf("%s\n", ok ? "echoed back unchanged: OK" : "MISMATCH");
    co_return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
    std::optional<std::uint16_t> port;
    std::string message = "Hello World!";
    if (argc > 1) port = static_cast<std::uint16_t>(std::atoi(argv[1]));
    if (argc > 2) message = argv[2];
    try {
        return corio::run(main_coro(port, message));
    } catch (const std::exception& e) {
        std::fprintf(stderr, "echo_client: %s\n", e.what());
        return 1;
    }
}
