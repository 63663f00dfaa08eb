// W4 echo server (peers' convention): one task per connection, 64 KiB reads, TCP_NODELAY,
// written with corio's streams API. Like the Asio peer it reads into its own 64 KiB buffer
// (read_into) and writes from it; CORIO_ECHO_COPY=1 uses read(n), which returns a new string.
#include <corio/corio.hpp>

#include <cstdio>
#include <cstdlib>
#include <string_view>
#include <vector>

bool g_copy = false;

corio::Coro<> echo(corio::StreamReader reader, corio::StreamWriter writer) {
    try {
        if (g_copy) {
            for (;;) {
                std::string data = co_await reader.read(65536);
                if (data.empty()) break;
                writer.write(data);
                co_await writer.drain();
            }
        } else {
            std::vector<char> buffer(65536);
            for (;;) {
                std::size_t n = co_await reader.read_into(buffer);
                if (n == 0) break;
                writer.write(std::string_view(buffer.data(), n));
                co_await writer.drain();
            }
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
    g_copy = std::getenv("CORIO_ECHO_COPY") != nullptr;
    try {
        return corio::run(serve(port));
    } catch (const corio::KeyboardInterrupt&) {
        return 0;
    }
}
