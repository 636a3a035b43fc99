package config

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
)

// Block is one typed configuration block as written: the keys the top level
// does not know (an identity source's, a store's, a minting mode's), and the
// key path they sit under ("identity[1]", "store", "minting"). The package
// that implements the block decodes it into its own typed Config with
// Decode, so every message still names the full key path.
type Block struct {
	// Path is where the block sits, e.g. "store" or "identity[0]".
	Path string
	// Raw holds the block's keys and values (nested maps for sub-blocks).
	Raw map[string]any
}

// Key is the full path of key inside the block: Block{Path: "store"}.Key("postgres.url")
// is "store.postgres.url".
func (b Block) Key(key string) string {
	if b.Path == "" {
		return key
	}
	if key == "" {
		return b.Path
	}
	return b.Path + "." + key
}

// Errorf is a configuration error about key inside the block: "config:
// <full key>: <message>".
func (b Block) Errorf(key, format string, a ...any) error {
	return fmt.Errorf("config: %s: %s", b.Key(key), fmt.Sprintf(format, a...))
}

// Decode decodes the block into into, a pointer to a struct whose fields
// carry koanf tags. Unknown keys are refused, naming them; durations are
// Go durations with a unit ("10s", "12h": a bare number is refused);
// comma-separated strings fill lists. Errors name the full key path.
func (b Block) Decode(into any) error {
	var unknown []string
	dc := &mapstructure.DecoderConfig{
		DecodeHook: mapstructure.ComposeDecodeHookFunc(
			durationHook(),
			boolHook(),
			mapstructure.StringToSliceHookFunc(","),
		),
		WeaklyTypedInput: true,
		ErrorUnused:      false,
		Metadata:         &mapstructure.Metadata{},
		TagName:          "koanf",
		Result:           into,
	}
	d, err := mapstructure.NewDecoder(dc)
	if err != nil {
		return err
	}
	if err := d.Decode(b.Raw); err != nil {
		return fmt.Errorf("config: %s", b.cleanError(err))
	}
	unknown = append(unknown, dc.Metadata.Unused...)
	if len(unknown) > 0 {
		var errs []error
		for _, k := range unknown {
			errs = append(errs, b.Errorf(k, "unknown key: check its spelling against the configuration reference (README.md and docs/)"))
		}
		return errors.Join(errs...)
	}
	return nil
}

// cleanError turns mapstructure's messages ("'timeout' expected …") into
// ones that name the full key.
func (b Block) cleanError(err error) string {
	msg := strings.ReplaceAll(err.Error(), "decoding failed due to the following error(s):\n\n", "")
	var lines []string
	for _, l := range strings.Split(msg, "\n") {
		if l = strings.TrimSpace(l); l == "" {
			continue
		}
		if rest, ok := strings.CutPrefix(l, "'"); ok {
			if key, tail, ok := strings.Cut(rest, "'"); ok {
				l = b.Key(key) + ":" + tail
			}
		}
		lines = append(lines, l)
	}
	return strings.Join(lines, "; ")
}

// durationHook decodes time.Duration from strings with a unit only: a bare
// number (YAML ttl: 12, an environment value "12") is refused, where
// mapstructure would read nanoseconds.
func durationHook() mapstructure.DecodeHookFuncType {
	return func(from, to reflect.Type, data any) (any, error) {
		if to != reflect.TypeFor[time.Duration]() {
			return data, nil
		}
		switch v := data.(type) {
		case string:
			if _, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
				return nil, fmt.Errorf("%q has no unit: write it as a duration such as 10s, 5m or 12h", v)
			}
			d, err := time.ParseDuration(strings.TrimSpace(v))
			if err != nil {
				return nil, fmt.Errorf("%q is not a duration such as 10s, 5m or 12h", v)
			}
			return d, nil
		case int, int64, uint64, float64:
			return nil, fmt.Errorf("%v has no unit: write it as a duration such as 10s, 5m or 12h", v)
		}
		return data, nil
	}
}

// boolHook decodes bool from true/false (and YAML's booleans), refusing
// other text with a message instead of strconv's.
func boolHook() mapstructure.DecodeHookFuncType {
	return func(from, to reflect.Type, data any) (any, error) {
		if to.Kind() != reflect.Bool {
			return data, nil
		}
		if v, ok := data.(string); ok {
			switch strings.ToLower(strings.TrimSpace(v)) {
			case "true", "yes", "on", "1":
				return true, nil
			case "false", "no", "off", "0", "":
				return false, nil
			}
			return nil, fmt.Errorf("%q is not true or false", v)
		}
		return data, nil
	}
}

// ReadSecret fills *value from the file named by file, when file is set:
// the *_file form of a secret key (trailing newlines dropped). Setting both
// forms, an unreadable file and an empty one are errors naming key.
func (b Block) ReadSecret(key string, value *string, file string) error {
	if file == "" {
		return nil
	}
	if *value != "" {
		return b.Errorf(key, "%s and %s_file are both set: keep one", b.Key(key), b.Key(key))
	}
	raw, err := os.ReadFile(file)
	if err != nil {
		return b.Errorf(key+"_file", "%v", err)
	}
	*value = strings.TrimRight(string(raw), "\r\n")
	if *value == "" {
		return b.Errorf(key+"_file", "%s is empty", file)
	}
	return nil
}
