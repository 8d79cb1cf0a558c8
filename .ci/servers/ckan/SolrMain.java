import java.nio.file.Files;
import java.nio.file.Path;
import org.apache.solr.embedded.JettyConfig;
import org.apache.solr.embedded.JettySolrRunner;

/**
 * Serves a Solr home (one core, "ckan") on 127.0.0.1 under /solr for CKAN's search index in GeoWatch's tests.
 * Debian has no Solr server; the test framework's embedded Jetty runner needs only the Maven Central jars.
 * Usage: java -cp 'libs/*:classes' SolrMain SOLR_HOME PORT
 */
public final class SolrMain {
  public static void main(String[] args) throws Exception {
    String home = args[0];
    int port = Integer.parseInt(args[1]);
    // JettySolrRunner's connector binds 127.0.0.1 (hard-coded in 9.x): never all interfaces.
    System.setProperty("solr.log.dir", Path.of(home, "..", "solr-logs").toString());
    JettyConfig config = JettyConfig.builder().setPort(port).setContext("/solr").stopAtShutdown(true).build();
    JettySolrRunner runner = new JettySolrRunner(home, config);
    runner.start();
    Files.writeString(Path.of(home, "..", "solr.started"), Integer.toString(runner.getLocalPort()));
    Thread.currentThread().join();
  }
}
