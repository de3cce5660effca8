package adstream.kafka;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.PrintStream;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.stream.Stream;

import kafka.server.KafkaConfig;
import kafka.server.KafkaRaftServer;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.common.Uuid;
import org.apache.kafka.common.utils.Time;
import org.apache.kafka.metadata.storage.Formatter;

/**
 * A single-node Apache Kafka (KRaft, combined broker and controller) for the project's tests and
 * local runs, started by {@code local/kafka-broker.ts}.
 *
 * <p>It formats a fresh storage directory, binds 127.0.0.1 on free ports (a client listener with
 * SASL/PLAIN, as Confluent Cloud and Lambda's BASIC_AUTH use, and a controller listener), waits
 * until the broker answers an admin request with itself registered, then prints one line
 * {@code READY {"bootstrap":"127.0.0.1:port",...}} on stdout. It stops, and deletes its storage
 * when asked to, as soon as stdin closes (the launching process ended, even by SIGKILL), its
 * parent process disappears, or it gets SIGTERM.
 *
 * <p>Arguments: {@code --data-dir DIR [--parent-pid PID] [--delete-on-exit DIR]} (the directory
 * deleted once the broker has stopped, normally the one holding the data directory) and
 * {@code [--advertise-proxy-port PORT]} (adds a listener advertised at PORT, for a test proxy
 * that forwards to the listener's real port, printed as {@code proxied}); the client
 * password comes from the environment variable {@code ADSTREAM_KAFKA_PASSWORD} (never argv,
 * which {@code ps} shows), the user name from {@code ADSTREAM_KAFKA_USER}.
 */
public final class LocalBroker {
  private static final PrintStream OUT = System.out;

  private LocalBroker() {}

  public static void main(String[] args) throws Exception {
    Map<String, String> options = parse(args);
    Path dataDir = Paths.get(require(options, "--data-dir")).toAbsolutePath();
    Path deleteOnExit = options.containsKey("--delete-on-exit") ? Paths.get(options.get("--delete-on-exit")).toAbsolutePath() : null;
    String user = envOr("ADSTREAM_KAFKA_USER", "adstream");
    String password = envOr("ADSTREAM_KAFKA_PASSWORD", "");
    if (password.isEmpty()) fail("ADSTREAM_KAFKA_PASSWORD is not set");

    int clientPort = freePort();
    int controllerPort = freePort();
    while (controllerPort == clientPort) controllerPort = freePort();
    Path logDir = dataDir.resolve("kraft");
    Files.createDirectories(logDir);
    Integer proxyPort = options.containsKey("--advertise-proxy-port") ? Integer.valueOf(options.get("--advertise-proxy-port")) : null;
    int proxiedPort = proxyPort == null ? -1 : freePort();
    Properties props = brokerProperties(logDir, clientPort, controllerPort, user, password);
    if (proxyPort != null) {
      // A second client listener that advertises another port: clients that bootstrap through a
      // proxy on that port keep talking through it (tests cut connections there).
      props.put("listeners", props.get("listeners") + ",PROXIED://127.0.0.1:" + proxiedPort);
      props.put("advertised.listeners", props.get("advertised.listeners") + ",PROXIED://127.0.0.1:" + proxyPort);
      props.put("listener.security.protocol.map", props.get("listener.security.protocol.map") + ",PROXIED:SASL_PLAINTEXT");
      props.put("listener.name.proxied.plain.sasl.jaas.config", props.get("listener.name.client.plain.sasl.jaas.config"));
    }
    KafkaConfig config = KafkaConfig.fromProps(props, false);

    String clusterId = Uuid.randomUuid().toString();
    new Formatter()
        .setPrintStream(new PrintStream(OutputStream.nullOutputStream()))
        .setNodeId(config.nodeId())
        .setClusterId(clusterId)
        .setControllerListenerName("CONTROLLER")
        .setMetadataLogDirectory(config.metadataLogDir())
        .addDirectory(logDir.toString())
        .run();

    KafkaRaftServer server = new KafkaRaftServer(config, Time.SYSTEM);
    AtomicBoolean stopping = new AtomicBoolean(false);
    CountDownLatch stopped = new CountDownLatch(1);
    Runnable stop = () -> {
      if (!stopping.compareAndSet(false, true)) return;
      try {
        server.shutdown();
        server.awaitShutdown();
      } catch (Throwable t) {
        t.printStackTrace();
      } finally {
        if (deleteOnExit != null) deleteTree(deleteOnExit);
        stopped.countDown();
      }
    };
    Runtime.getRuntime().addShutdownHook(new Thread(() -> {
      stop.run();
      awaitQuietly(stopped);
    }, "local-broker-shutdown-hook"));

    watchStdin(stop);
    if (options.containsKey("--parent-pid")) watchParent(Long.parseLong(options.get("--parent-pid")), stop);

    String bootstrap = "127.0.0.1:" + clientPort;
    try {
      server.startup();
      awaitReady(bootstrap, user, password);
    } catch (Throwable t) {
      // Kafka's non-daemon threads would keep a half-started JVM alive: stop and exit non-zero
      // so the launcher retries on fresh ports.
      t.printStackTrace();
      stop.run();
      System.exit(1);
    }
    OUT.println("READY {\"bootstrap\":\"" + bootstrap + "\",\"proxied\":\"" + (proxyPort == null ? "" : "127.0.0.1:" + proxiedPort)
        + "\",\"controller\":\"127.0.0.1:" + controllerPort
        + "\",\"clusterId\":\"" + clusterId + "\",\"logDir\":\"" + jsonEscape(logDir.toString()) + "\",\"pid\":"
        + ProcessHandle.current().pid() + "}");
    OUT.flush();

    awaitQuietly(stopped);
    System.exit(0);
  }

  private static Properties brokerProperties(Path logDir, int clientPort, int controllerPort, String user, String password) {
    String jaas = "org.apache.kafka.common.security.plain.PlainLoginModule required username=\"" + user
        + "\" password=\"" + password + "\" user_" + user + "=\"" + password + "\";";
    Properties p = new Properties();
    p.put("process.roles", "broker,controller");
    p.put("node.id", "1");
    p.put("controller.quorum.voters", "1@127.0.0.1:" + controllerPort);
    p.put("listeners", "CLIENT://127.0.0.1:" + clientPort + ",CONTROLLER://127.0.0.1:" + controllerPort);
    p.put("advertised.listeners", "CLIENT://127.0.0.1:" + clientPort);
    p.put("listener.security.protocol.map", "CLIENT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT");
    p.put("controller.listener.names", "CONTROLLER");
    p.put("inter.broker.listener.name", "CLIENT");
    p.put("sasl.enabled.mechanisms", "PLAIN");
    p.put("sasl.mechanism.inter.broker.protocol", "PLAIN");
    p.put("listener.name.client.plain.sasl.jaas.config", jaas);
    p.put("log.dirs", logDir.toString());
    // One node: every internal topic has one replica. Fewer offsets/transaction partitions than
    // the defaults (50) keep startup short on a small machine; the semantics are the same.
    p.put("offsets.topic.replication.factor", "1");
    p.put("offsets.topic.num.partitions", "4");
    p.put("transaction.state.log.replication.factor", "1");
    p.put("transaction.state.log.min.isr", "1");
    p.put("transaction.state.log.num.partitions", "2");
    p.put("share.coordinator.state.topic.replication.factor", "1");
    p.put("share.coordinator.state.topic.min.isr", "1");
    p.put("group.initial.rebalance.delay.ms", "0");
    // Confluent Cloud does not create topics on first use; neither does this broker, so a test
    // that forgets to create its topic fails instead of silently getting one partition.
    p.put("auto.create.topics.enable", "false");
    p.put("num.partitions", "1");
    p.put("default.replication.factor", "1");
    p.put("min.insync.replicas", "1");
    p.put("num.network.threads", "2");
    p.put("num.io.threads", "4");
    p.put("log.flush.interval.messages", String.valueOf(Long.MAX_VALUE));
    return p;
  }

  /** Waits until the broker answers admin requests and lists itself (registered, unfenced). */
  private static void awaitReady(String bootstrap, String user, String password) throws Exception {
    Properties p = new Properties();
    p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    p.put("security.protocol", "SASL_PLAINTEXT");
    p.put("sasl.mechanism", "PLAIN");
    p.put("sasl.jaas.config", "org.apache.kafka.common.security.plain.PlainLoginModule required username=\"" + user
        + "\" password=\"" + password + "\";");
    p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "10000");
    p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "20000");
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(180);
    Exception last = null;
    try (Admin admin = Admin.create(p)) {
      while (System.nanoTime() < deadline) {
        try {
          if (!admin.describeCluster().nodes().get(20, TimeUnit.SECONDS).isEmpty()) return;
        } catch (Exception e) {
          last = e;
        }
        Thread.sleep(200);
      }
    }
    throw new IllegalStateException("broker did not become ready within 180 s", last);
  }

  /** Stdin closes when the launching process ends, whatever way it ends. */
  private static void watchStdin(Runnable stop) {
    Thread t = new Thread(() -> {
      InputStream in = System.in;
      byte[] buffer = new byte[256];
      try {
        while (in.read(buffer) >= 0) {
          // Anything written is ignored; only end-of-stream matters.
        }
      } catch (IOException ignored) {
        // A broken pipe means the same as end-of-stream.
      }
      stop.run();
      System.exit(0);
    }, "local-broker-stdin-watch");
    t.setDaemon(true);
    t.start();
  }

  private static void watchParent(long pid, Runnable stop) {
    Thread t = new Thread(() -> {
      for (;;) {
        if (ProcessHandle.of(pid).map(h -> !h.isAlive()).orElse(true)) {
          stop.run();
          System.exit(0);
        }
        try {
          Thread.sleep(1000);
        } catch (InterruptedException e) {
          return;
        }
      }
    }, "local-broker-parent-watch");
    t.setDaemon(true);
    t.start();
  }

  private static int freePort() throws IOException {
    try (ServerSocket socket = new ServerSocket(0, 1, InetAddress.getByName("127.0.0.1"))) {
      socket.setReuseAddress(true);
      return socket.getLocalPort();
    }
  }

  private static void deleteTree(Path dir) {
    if (!Files.exists(dir)) return;
    try (Stream<Path> paths = Files.walk(dir)) {
      paths.sorted(Comparator.reverseOrder()).forEach(path -> path.toFile().delete());
    } catch (IOException e) {
      System.err.println("could not delete " + dir + ": " + e);
    }
  }

  private static void awaitQuietly(CountDownLatch latch) {
    try {
      latch.await();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  private static Map<String, String> parse(String[] args) {
    Map<String, String> options = new LinkedHashMap<>();
    for (int i = 0; i < args.length; i++) {
      String arg = args[i];
      if ((arg.equals("--data-dir") || arg.equals("--parent-pid") || arg.equals("--delete-on-exit") || arg.equals("--advertise-proxy-port"))
          && i + 1 < args.length) {
        options.put(arg, args[++i]);
      } else {
        fail("unknown argument " + arg + "; usage: --data-dir DIR [--parent-pid PID] [--delete-on-exit DIR] [--advertise-proxy-port PORT]");
      }
    }
    return options;
  }

  private static String require(Map<String, String> options, String name) {
    String value = options.get(name);
    if (value == null) fail(name + " is required");
    return value;
  }

  private static String envOr(String name, String fallback) {
    String value = System.getenv(name);
    return value == null ? fallback : value;
  }

  private static String jsonEscape(String text) {
    return text.replace("\\", "\\\\").replace("\"", "\\\"");
  }

  private static void fail(String message) {
    System.err.println("local broker: " + message);
    System.exit(2);
  }
}
