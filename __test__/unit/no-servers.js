// Set up before every unit suite (jest.config.js): Redis and the broker at addresses where nothing
// listens (port 1 refuses connections), for the addon, the CLI's child processes and the helpers.
process.env.REDIS_URL = 'redis://127.0.0.1:1'
process.env.KAFKA_BROKERS = '127.0.0.1:1'
