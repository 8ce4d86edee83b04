// The oracle for Jenkins' `H` in crontab text: which values Jenkins picks for a job name.
//
// Run: java crates/triggers/tests/jenkins_hash/JenkinsHash.java > crates/triggers/tests/jenkins_hash/vectors.jsonl
//
// It follows Jenkins' hudson.scheduler.Hash.from(seed) (MD5 of the seed's UTF-8 bytes, the
// second half XORed onto the first, read big-endian as the seed of java.util.Random) and
// BaseParser.doHash / doRange (one nextInt per `H`, fields in the order minute, hour,
// day of month, month, day of week; a bare `H` in the day of month within 1-28, in the day
// of week within 0-6), with the JDK's own MessageDigest and java.util.Random. Each output
// line gives the values of each field of the expression for that key.

import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;

public class JenkinsHash {
    static final int[] LOWER = {0, 0, 1, 1, 0};
    static final int[] UPPER = {59, 23, 31, 12, 7};
    static final String[] NAMES = {"minute", "hour", "day", "month", "day_of_week"};

    static Random from(String seed) throws Exception {
        MessageDigest md5 = MessageDigest.getInstance("MD5");
        md5.update(seed.getBytes(StandardCharsets.UTF_8));
        byte[] digest = md5.digest();
        for (int i = 8; i < digest.length; i++) digest[i % 8] ^= digest[i];
        long l = 0;
        for (int i = 0; i < 8; i++) l = (l << 8) + (digest[i] & 0xFF);
        return new Random(l);
    }

    static long doHash(Random rnd, int s, int e, int step) {
        if (step > e - s + 1) throw new IllegalArgumentException("step out of range");
        if (step > 1) {
            long bits = 0;
            for (int i = rnd.nextInt(step) + s; i <= e; i += step) bits |= 1L << i;
            return bits;
        }
        return 1L << (s + rnd.nextInt(e + 1 - s));
    }

    static long doRange(int s, int e, int step) {
        long bits = 0;
        for (int i = s; i <= e; i += step) bits |= 1L << i;
        return bits;
    }

    // One field: comma-separated terms `*`, `*/n`, `a`, `a-b`, `a-b/n`, `H`, `H/n`,
    // `H(a-b)`, `H(a-b)/n` (the terms of Jenkins' CrontabParser grammar).
    static long field(Random rnd, int f, String text) {
        long bits = 0;
        for (String term : text.split(",")) {
            int step = 1;
            int slash = term.indexOf('/');
            if (slash >= 0) {
                step = Integer.parseInt(term.substring(slash + 1));
                term = term.substring(0, slash);
            }
            if (term.equals("*")) {
                bits |= doRange(LOWER[f], UPPER[f], step);
            } else if (term.startsWith("H(")) {
                String[] r = term.substring(2, term.length() - 1).split("-");
                bits |= doHash(rnd, Integer.parseInt(r[0]), Integer.parseInt(r[1]), step);
            } else if (term.equals("H")) {
                int u = UPPER[f];
                if (f == 2) u = 28;
                if (f == 4) u = 6;
                bits |= doHash(rnd, LOWER[f], u, step);
            } else if (term.contains("-")) {
                String[] r = term.split("-");
                bits |= doRange(Integer.parseInt(r[0]), Integer.parseInt(r[1]), step);
            } else {
                bits |= 1L << Integer.parseInt(term);
            }
        }
        return bits;
    }

    static String json(String s) {
        StringBuilder b = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            if (c == '"' || c == '\\') b.append('\\');
            b.append(c);
        }
        return b.append('"').toString();
    }

    public static void main(String[] args) throws Exception {
        String[] keys = {"backup", "nightly-report", "job-42", "cleanup.tmp", "Grüße/日本", "a"};
        String[] exprs = {
            "H * * * *",
            "H H * * *",
            "H(0-29) 3 * * *",
            "H/15 * * * *",
            "H(0-29)/10 H(9-17) * * 1-5",
            "H H H * *",
            "H H H H *",
            "H H * * H",
            "H H(0-2) * * *",
            "H,H(30-59) H/6 * * *",
            "0 0 * * H(1-5)",
            "H/1 H(0-23)/7 * * *",
        };
        for (String key : keys) {
            for (String expr : exprs) {
                Random rnd = from(key);
                String[] parts = expr.split(" ");
                StringBuilder out = new StringBuilder();
                out.append("{\"key\":").append(json(key)).append(",\"expr\":").append(json(expr));
                for (int f = 0; f < 5; f++) {
                    long bits = field(rnd, f, parts[f]);
                    List<Integer> values = new ArrayList<>();
                    for (int i = 0; i < 64; i++) if ((bits & (1L << i)) != 0) values.add(i);
                    out.append(",\"").append(NAMES[f]).append("\":").append(values.toString().replace(" ", ""));
                }
                System.out.println(out.append("}"));
            }
        }
    }
}
