// W4 echo server (peers' convention): one task per connection, 64 KiB reads, TCP_NODELAY,
// written with corio's streams API.
#include <corio/corio.hpp>

#include <cstdio>
#include <cstdlib>

corio::Coro<> echo(corio::StreamReader reader, corio::StreamWriter writer) {
    try {
        for (;;) {
            std::string data = co_await reader.read(65536);
            if (data.empty()) break;
            writer.write(data);
            co_await writer.drain();
        }
    } catch (const std::system_error&) {
        // The client resets its connections when it is done: not worth a report.
    }
}

corio::Coro<int> serve(std::uint16_t port) {
    corio::Server server = co_await corio::start_server(echo, "127.0.0.1", port);
    co_await server.serve_forever();
    co_return 0;
}

int main(int argc, char** argv) {
    auto port = static_cast<std::uint16_t>(argc > 1 ? std::atoi(argv[1]) : 25000);
    try {
        return corio::run(serve(port));
    } catch (const corio::KeyboardInterrupt&) {
        return 0;
    }
}
