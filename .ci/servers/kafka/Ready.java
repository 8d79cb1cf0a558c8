// Readiness probe for kafka.sh: exits 0 once the broker answers a metadata request.
// Run with the Java source launcher: java -cp 'libs/*' Ready.java 127.0.0.1:19092
import java.util.Properties;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;

public class Ready {
  public static void main(String[] args) throws Exception {
    Properties props = new Properties();
    props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
    props.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "3000");
    props.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "5000");
    try (Admin admin = Admin.create(props)) {
      int nodes = admin.describeCluster().nodes().get(5, TimeUnit.SECONDS).size();
      admin.listTopics().names().get(5, TimeUnit.SECONDS);
      System.out.println("kafka ready: " + nodes + " broker(s) at " + args[0]);
    } catch (Exception e) {
      System.err.println("kafka not ready: " + e);
      System.exit(1);
    }
  }
}
