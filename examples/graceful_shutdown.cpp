// The seeds' "handle CancelledError for graceful shutdown" (000, 001), on Ctrl-C: asyncio.run
// cancels the main task on SIGINT; the server then closes, says goodbye to its clients, and the
// program exits cleanly.
//   async def main():
//       server = await asyncio.start_server(handle, '127.0.0.1', 8888)
//       try:
//           await asyncio.sleep(float('inf'))          # serve until Ctrl-C
//       except asyncio.CancelledError:
//           server.close()
//           for t in handlers: t.cancel()  # the handler tasks, each added by itself to a set
//           await server.wait_closed()     # corio: server.cancel_clients() cancels them
//           raise
//   try: asyncio.run(main())
//   except KeyboardInterrupt: print('bye')
//
// So that it runs unattended, the example presses Ctrl-C itself: once the server is up and a
// client is connected, it sends itself SIGINT (kill(getpid(), SIGINT)). It checks that the
// client got its goodbye and a clean end of stream, and that corio::run ended with
// KeyboardInterrupt.
#include <corio/corio.hpp>

#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <string>

using namespace std::chrono_literals;

namespace {

int connected = 0;
int closed_cleanly = 0;
bool client_saw_goodbye = false;
bool shutdown_ran = false;

corio::Coro<> handle_client(corio::StreamReader reader, corio::StreamWriter writer) {
    ++connected;
    std::exception_ptr cancelled;
    try {
        for (;;) {
            std::string line = co_await reader.readline();
            if (line.empty()) break;
            writer.write("echo: " + line);
            co_await writer.drain();
        }
    } catch (const corio::CancelledError&) {
        cancelled = std::current_exception();  // the server is shutting down
    }
    // Clean up (this may await, even after a cancellation): a last word, then close. Bounded: a
    // client that never reads must not hold the shutdown up (abort() drops what it left).
    if (cancelled) writer.write("server shutting down, goodbye\n");
    writer.close();
    auto closing = corio::wait_for(writer.wait_closed(), std::chrono::seconds(5));
    try {
        co_await std::move(closing);
    } catch (const corio::TimeoutError&) {
        writer.abort();
    }
    ++closed_cleanly;
    std::printf("server: connection closed cleanly\n");
    if (cancelled) std::rethrow_exception(cancelled);
}

// A client that says hello, then stays connected until the server goes away.
corio::Coro<> client(std::uint16_t port, corio::Event* connected_event) {
    corio::Coro<corio::StreamPair> connecting = corio::open_connection("127.0.0.1", port);
    corio::StreamPair conn = co_await std::move(connecting);
    auto& [reader, writer] = conn;
    writer.write("hello\n");
    co_await writer.drain();
    std::string reply = co_await reader.readline();
    std::printf("client: got %s", reply.c_str());
    connected_event->set();
    corio::Coro<std::string> rest_coro = corio::wait_for(reader.read(-1), 10s);
    std::string rest = co_await std::move(rest_coro);  // everything until the server closes
    std::printf("client: server said %s", rest.c_str());
    std::printf("client: end of stream\n");
    client_saw_goodbye = rest == "server shutting down, goodbye\n";
    writer.close();
    co_await writer.wait_closed();
}

corio::Coro<int> main_coro() {
    corio::Coro<corio::Server> starting = corio::start_server(handle_client, "127.0.0.1", 0);
    corio::Server server = co_await std::move(starting);
    std::uint16_t port = server.sockets()[0].getsockname().port();
    std::printf("server: listening on 127.0.0.1:%u\n", unsigned(port));
    corio::Coro<> forever = server.serve_forever();
    corio::Task<> serving = corio::create_task(std::move(forever), "serve_forever");
    corio::Event client_connected;
    corio::Task<> visitor = corio::create_task(client(port, &client_connected), "client");
    co_await client_connected.wait();

    std::printf("main: up with a client connected; pressing Ctrl-C (SIGINT to myself)\n");
    std::fflush(stdout);
    ::kill(::getpid(), SIGINT);
    std::exception_ptr interrupted;
    try {
        co_await corio::sleep(30s);  // "forever": the SIGINT cancels this
    } catch (const corio::CancelledError&) {
        interrupted = std::current_exception();
    }
    if (!interrupted) {
        std::printf("main: no SIGINT arrived\n");
        co_return 1;
    }
    std::printf("main: cancelled by SIGINT; shutting down\n");
    server.close();          // stop accepting
    server.cancel_clients();  // cancel the handlers: they say goodbye and close
    co_await server.wait_closed();
    co_await serving;        // serve_forever returns once the server is closed
    co_await visitor;
    shutdown_ran = true;
    std::printf("main: server closed, %d of %d connection(s) closed cleanly\n", closed_cleanly, connected);
    std::rethrow_exception(interrupted);  // let corio::run see the cancellation: KeyboardInterrupt
}

}  // namespace

int main() {
    try {
        int code = corio::run(main_coro());
        std::printf("corio::run returned %d without a KeyboardInterrupt: FAILED\n", code);
        return 1;
    } catch (const corio::KeyboardInterrupt&) {
        bool ok = shutdown_ran && connected == 1 && closed_cleanly == 1 && client_saw_goodbye;
        std::printf("KeyboardInterrupt: %s\n", ok ? "clean exit, OK" : "FAILED");
        return ok ? 0 : 1;
    }
}
