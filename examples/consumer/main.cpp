// A program built against an installed corio (see README.md next to this file): a TCP echo
// server on a free loopback port, two clients at once through gather, each sending one line
// and reading it back.
#include <corio/corio.hpp>

#include <cstdint>
#include <cstdio>
#include <exception>
#include <string>

using namespace std::chrono_literals;

// Sends every line back until the client closes its end.
corio::Coro<> echo(corio::StreamReader reader, corio::StreamWriter writer) {
    for (;;) {
        std::string line = co_await reader.readline();
        if (line.empty()) break;  // EOF
        writer.write(line);
        co_await writer.drain();
    }
    writer.close();
    co_await writer.wait_closed();
}

// Connects, sends `text` as one line, returns the line that comes back.
corio::Coro<std::string> round_trip(std::uint16_t port, std::string text) {
    corio::Coro<corio::StreamPair> connecting = corio::open_connection("127.0.0.1", port);
    corio::StreamPair conn = co_await std::move(connecting);
    auto& [reader, writer] = conn;
    writer.write(text + "\n");
    co_await writer.drain();
    corio::Coro<std::string> reading = corio::wait_for(reader.readline(), 5s);
    std::string reply = co_await std::move(reading);
    writer.close();
    co_await writer.wait_closed();
    co_return reply;
}

corio::Coro<int> main_coro() {
    corio::Coro<corio::Server> starting = corio::start_server(echo, "127.0.0.1", 0);  // 0: any free port
    corio::Server server = co_await std::move(starting);
    std::uint16_t port = server.sockets()[0].getsockname().port();

    auto both = corio::gather(round_trip(port, "hello"), round_trip(port, "corio"));
    auto replies = co_await std::move(both);
    auto& [a, b] = replies;

    server.close();
    co_await server.wait_closed();  // until both handlers have finished
    bool ok = a == "hello\n" && b == "corio\n";
    std::printf("%s\n", ok ? "consumer ok" : "consumer FAILED: wrong echo");
    co_return ok ? 0 : 1;
}

int main() {
    try {
        return corio::run(main_coro());
    } catch (const std::exception& e) {
        std::fprintf(stderr, "consumer FAILED: %s\n", e.what());
        return 1;
    }
}
