// The seeds' "producer-consumer" pattern (named in 002 and 003, with no code there), as a chat
// server: every connection's handler is a producer that puts the lines it reads into one
// corio::Queue; a single broadcaster task consumes the queue and writes each message to every
// other client.
//   queue = asyncio.Queue(maxsize=100)
//   async def handle(reader, writer):  ... await queue.put((name, line)) ...
//   async def broadcaster():
//       while True:
//           name, line = await queue.get()
//           for other, w in clients.items(): if other != name: w.write(...)
//           queue.task_done()
//
// The program starts the server and three clients (alice, bob, carol) itself; each says hello,
// and each must receive the other two's greetings. Then everyone leaves and the server closes.
#include <corio/corio.hpp>
#include <corio/queue.hpp>

#include <cstdio>
#include <map>
#include <set>
#include <string>
#include <vector>

using namespace std::chrono_literals;

namespace {

struct Message {
    std::string from;
    std::string text;  // with its "\n"
};

struct ChatRoom {
    corio::Queue<Message> queue{100};
    std::map<std::string, corio::StreamWriter> members;
    int broadcasts = 0;
};

ChatRoom room;

// The producer side: one per connection. Protocol: "NICK <name>\n", then lines, then "/quit\n".
corio::Coro<> handle_client(corio::StreamReader reader, corio::StreamWriter writer) {
    std::string hello = co_await reader.readline();
    if (hello.rfind("NICK ", 0) != 0 || hello.size() < 7) {
        writer.write("expected: NICK <name>\n");
        co_return;
    }
    std::string name = hello.substr(5, hello.size() - 6);
    room.members[name] = writer;
    writer.write("welcome " + name + "\n");
    co_await writer.drain();
    std::printf("server: %s joined (%zu in the room)\n", name.c_str(), room.members.size());
    for (;;) {
        std::string line = co_await reader.readline();
        if (line.empty() || line == "/quit\n") break;
        Message message{name, line};
        co_await room.queue.put(std::move(message));  // waits while the queue is full
    }
    room.members.erase(name);
    std::printf("server: %s left\n", name.c_str());
}

// The consumer side: one task for the whole room.
corio::Coro<> broadcaster() {
    for (;;) {
        Message m;
        try {
            m = co_await room.queue.get();
        } catch (const corio::QueueShutDown&) {
            co_return;  // the server is closing
        }
        for (auto& [name, writer] : room.members) {
            if (name == m.from) continue;
            writer.write(m.from + ": " + m.text);
        }
        ++room.broadcasts;
        room.queue.task_done();
    }
}

// A chat client of the example's own: joins, waits for everyone, greets, reads the others.
struct Client {
    std::string name;
    corio::StreamPair conn;
    std::set<std::string> received;
};

corio::Coro<> join(Client* c, std::uint16_t port) {
    corio::Coro<corio::StreamPair> connecting = corio::open_connection("127.0.0.1", port);
    c->conn = co_await std::move(connecting);
    c->conn.second.write("NICK " + c->name + "\n");
    corio::Coro<std::string> welcome_coro = corio::wait_for(c->conn.first.readline(), 5s);
    std::string welcome = co_await std::move(welcome_coro);
    std::printf("%s <- %s", c->name.c_str(), welcome.c_str());
}

corio::Coro<> chat(Client* c, int expected) {
    c->conn.second.write("hello from " + c->name + "\n");
    co_await c->conn.second.drain();
    while (int(c->received.size()) < expected) {
        corio::Coro<std::string> reading = corio::wait_for(c->conn.first.readline(), 5s);
        std::string line = co_await std::move(reading);
        if (line.empty()) break;
        std::printf("%s <- %s", c->name.c_str(), line.c_str());
        c->received.insert(line);
    }
    c->conn.second.write("/quit\n");
    c->conn.second.write_eof();
    std::string rest = co_await c->conn.first.read(-1);  // the server closes our connection
    c->conn.second.close();
}

corio::Coro<int> main_coro() {
    corio::Coro<corio::Server> starting = corio::start_server(handle_client, "127.0.0.1", 0);
    corio::Server server = co_await std::move(starting);
    std::uint16_t port = server.sockets()[0].getsockname().port();
    std::printf("chat server on 127.0.0.1:%u\n", unsigned(port));
    corio::Task<> consumer = corio::create_task(broadcaster(), "broadcaster");

    std::vector<Client> clients{{"alice", {}, {}}, {"bob", {}, {}}, {"carol", {}, {}}};
    // Everyone is in the room before anyone speaks, so nobody misses a greeting.
    for (auto& c : clients) {
        corio::Coro<> joining = join(&c, port);
        co_await std::move(joining);
    }
    auto talk = [&](corio::TaskGroup& tg) -> corio::Coro<> {
        for (auto& c : clients) tg.create_task(chat(&c, int(clients.size()) - 1));
        co_return;
    };
    corio::Coro<> everyone = corio::task_group(talk);
    co_await std::move(everyone);

    co_await room.queue.join();  // every message has been broadcast
    server.close();
    co_await server.wait_closed();
    room.queue.shutdown();
    co_await consumer;

    bool ok = room.broadcasts == int(clients.size());
    for (auto& c : clients) {
        std::set<std::string> expected;
        for (auto& other : clients)
            if (other.name != c.name) expected.insert(other.name + ": hello from " + other.name + "\n");
        if (c.received != expected) ok = false;
    }
    std::printf("%d messages broadcast; %s\n", room.broadcasts,
                ok ? "every client got every other client's greeting: OK" : "FAILED");
    co_return ok ? 0 : 1;
}

}  // namespace

int main() {
    try {
        return corio::run(main_coro());
    } catch (const std::exception& e) {
        std::fprintf(stderr, "chat_server: %s\n", e.what());
        return 1;
    }
}
