import { DataTypes, Model, type CreationOptional, type InferAttributes, type InferCreationAttributes, type Sequelize } from 'sequelize'

export class Robot extends Model<InferAttributes<Robot>, InferCreationAttributes<Robot>> {
  declare id: CreationOptional<number>
  declare uuid: string
  declare serial: string
  declare name: CreationOptional<string>
  declare secretHash: string
  /** The secret before the last rotation: accepted until previousSecretExpiresAt (the grace period; now for none), then recognized as revoked for 7 days. */
  declare previousSecretHash: CreationOptional<string | null>
  declare previousSecretExpiresAt: CreationOptional<Date | null>
  declare enabled: CreationOptional<boolean>
  declare state: CreationOptional<string>
  declare lastSeenAt: CreationOptional<Date | null>
  declare dataConnected: CreationOptional<boolean>
  declare commandConnected: CreationOptional<boolean>
  /** The robot's model (docs/protocol.md §14): both set, or both null. */
  declare modelName: CreationOptional<string | null>
  declare modelVersion: CreationOptional<number | null>
  declare createdAt: CreationOptional<Date>
  declare updatedAt: CreationOptional<Date>

  static initModel (sequelize: Sequelize): typeof Robot {
    return Robot.init({
      id: { type: DataTypes.INTEGER, primaryKey: true, autoIncrement: true },
      uuid: { type: DataTypes.UUID, allowNull: false, unique: true },
      serial: { type: DataTypes.STRING(128), allowNull: false, unique: true },
      name: { type: DataTypes.STRING(200), allowNull: false, defaultValue: '' },
      secretHash: { type: DataTypes.STRING(255), allowNull: false },
      previousSecretHash: { type: DataTypes.STRING(255), allowNull: true },
      previousSecretExpiresAt: { type: DataTypes.DATE, allowNull: true },
      enabled: { type: DataTypes.BOOLEAN, allowNull: false, defaultValue: true },
      state: { type: DataTypes.STRING(16), allowNull: false, defaultValue: 'idle' },
      lastSeenAt: { type: DataTypes.DATE, allowNull: true },
      dataConnected: { type: DataTypes.BOOLEAN, allowNull: false, defaultValue: false },
      commandConnected: { type: DataTypes.BOOLEAN, allowNull: false, defaultValue: false },
      modelName: { type: DataTypes.STRING(64), allowNull: true },
      modelVersion: { type: DataTypes.INTEGER, allowNull: true },
      createdAt: DataTypes.DATE,
      updatedAt: DataTypes.DATE
    }, { sequelize, tableName: 'robots', underscored: true })
  }
}
